"""The write layer: the only code that changes a system (Kubernetes, AWS, Alertmanager).

    context.py       Context: what faults and runbook actions receive (GameDay implements it)
    kube.py          images, replicas, pods, the maintenance switch, the Service's selector,
                     Argo aborts, Chaos Mesh objects, NetworkPolicies
    aws.py           RDS stop/start/reboot, ElastiCache reboot, target (de)registration
    alertmanager.py  posting (and resolving) alerts

Faults (playbook/faults/) and runbook actions (playbook/actions/) share these primitives and
never import each other; probes (playbook/probes/) never import this package. Each primitive
takes the client of its system (playbook.clients builds them) and raises RuntimeError with the
API's one sentence when the system refuses. There are no database writes: the database probe
opens read-only sessions, and no fault or action writes to it.
"""
