"""deploy/kubernetes/: valid manifests (offline, against the Kubernetes API
schemas bundled in ``kubernetes-validate``) that fit together and fit wsgen:
the container's arguments are ones ``wsgen serve`` accepts, the probes hit
the endpoints that mean liveness and readiness, and the grace period covers
preStop + drain delay + graceful timeout. (/readyz itself: test_readyz.py.)
"""
from __future__ import annotations

from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from wsgen.cli import build_parser

K8S = Path(__file__).resolve().parent.parent / "deploy" / "kubernetes"
VERSION = "1.30.0"          # the oldest Kubernetes these manifests are written for


def manifests() -> dict[str, dict]:
    docs = {}
    for path in sorted(K8S.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                docs[doc["kind"]] = doc
    return docs


@pytest.mark.parametrize("version", [VERSION, kubernetes_validate.latest_version()])
def test_every_manifest_is_valid_against_the_api_schema(version):
    docs = manifests()
    assert set(docs) == {"Deployment", "Service", "Ingress"}
    for kind, doc in docs.items():
        kubernetes_validate.validate(doc, version, strict=True)    # raises ValidationError naming the field


def test_strict_validation_catches_a_misspelt_field():
    deployment = manifests()["Deployment"]
    deployment["spec"]["template"]["spec"]["terminationGracePeriodSecond"] = 20
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, VERSION, strict=True)


def container() -> dict:
    (c,) = manifests()["Deployment"]["spec"]["template"]["spec"]["containers"]
    return c


def serve_args():
    c = container()
    assert c["command"] == ["wsgen"] and c["args"][0] == "serve"
    return build_parser().parse_args(c["args"])        # exits (SystemExit) on an unknown flag


def test_container_runs_wsgen_serve_with_flags_it_knows_on_the_declared_ports():
    args = serve_args()
    ports = {p["name"]: p["containerPort"] for p in container()["ports"]}
    assert ports == {"http": args.http_port, "ws": args.port}
    assert args.host == "0.0.0.0"
    assert args.workers == "auto"


def test_probes_mean_what_they_say():
    c = container()
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert c["readinessProbe"]["failureThreshold"] == 1     # one 503 takes the pod out


def test_grace_period_covers_prestop_drain_and_graceful_timeout():
    args = serve_args()
    spec = manifests()["Deployment"]["spec"]["template"]["spec"]
    command = container()["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep"
    pre_stop = float(command[1])
    needed = pre_stop + args.drain_delay + args.graceful_timeout
    assert spec["terminationGracePeriodSeconds"] >= needed + 1, (spec["terminationGracePeriodSeconds"], needed)
    # and not absurdly more: a stuck pod should not linger for minutes
    assert spec["terminationGracePeriodSeconds"] <= needed + 10
    # the readiness probe notices within the drain delay
    probe = container()["readinessProbe"]
    assert probe["periodSeconds"] * probe["failureThreshold"] <= args.drain_delay


def test_service_and_ingress_point_at_the_containers_ports():
    docs = manifests()
    selector = docs["Service"]["spec"]["selector"]
    assert selector.items() <= docs["Deployment"]["spec"]["template"]["metadata"]["labels"].items()
    names = {p["name"] for p in container()["ports"]}
    assert {p["targetPort"] for p in docs["Service"]["spec"]["ports"]} == names
    (rule,) = docs["Ingress"]["spec"]["rules"]
    (path,) = rule["http"]["paths"]
    backend = path["backend"]["service"]
    assert backend["name"] == docs["Service"]["metadata"]["name"] and backend["port"]["name"] == "http"
    assert path["path"] == "/" and path["pathType"] == "Prefix"    # the page, the streams and /ws
    annotations = docs["Ingress"]["metadata"]["annotations"]
    assert annotations["nginx.ingress.kubernetes.io/proxy-buffering"] == "off"
    assert int(annotations["nginx.ingress.kubernetes.io/proxy-read-timeout"]) >= 3600


def test_settings_the_readme_says_matter_behind_a_balancer_are_set():
    args = serve_args()
    # README "Deploying": behind a proxy every client has the proxy's address, so the per-address
    # limit must not be the one that caps them all
    assert args.max_connections_per_ip >= args.max_connections
    # the token comes from a Secret, and a missing Secret stops the pod instead of serving openly
    (token,) = [e for e in container()["env"] if e["name"] == "WSGEN_TOKEN"]
    ref = token["valueFrom"]["secretKeyRef"]
    assert ref["name"] == "wsgen" and ref["key"] == "token" and ref["optional"] is False


def test_auto_workers_fit_the_memory_limit():
    # --workers=auto follows the CPU limit (wsgen.server.workers.usable_cpus); without one it follows
    # the node's CPUs, and a big node's workers (~140 MiB each, supervisor ~130 MiB) pass 1 GiB
    assert serve_args().workers == "auto"
    limits = container()["resources"]["limits"]
    cpus = float(limits["cpu"].rstrip("m")) / (1000 if limits["cpu"].endswith("m") else 1)
    memory_mib = int(limits["memory"].removesuffix("Gi")) * 1024 if limits["memory"].endswith("Gi") \
        else int(limits["memory"].removesuffix("Mi"))
    assert memory_mib >= 130 + 140 * -(-cpus // 1) + 128, limits     # and some room for streams
