"""Game-day faults: inject() and revert(), journaled (base.py), acting through
playbook.control; every kind is listed in registry.py, from which `playbook gameday revert`
rebuilds what a killed game day left injected."""
