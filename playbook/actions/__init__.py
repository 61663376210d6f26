"""The runbook's mitigations (playbook 4.1-4.3 and the security isolation), acting through
playbook.control; the drills run them. They never import a fault."""
