"""Operations: doctor, systemd, Postfix, several daemons, the benchmark smoke runs."""
