from listbot.cli import main

main()
