"""predisclosure-applications@: the completeness check, applicant mail, the public roster
and member upkeep.
"""
