"""The Kubernetes manifests (deploy/kubernetes): every resource passes the API's schema, strictly (kubernetes-validate,
offline), as the base files stand and as each overlay renders them (kustomize); and the invariants an operator relies
on hold in each: beat is one, every Deployment has probes, no secret is written down, the migrate Job exists, the web
tier has a disruption budget and stops within its grace, and every pod runs on OpenShift's restricted profile."""

from __future__ import annotations

import copy
import json
import re
import runpy
import secrets
import shutil
import subprocess
from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from django.conf import settings

from kelabooking import crypto
from tests.kelabooking.test_settings import run_manage, settings_in_fresh_process
from tests.test_compose import COMPOSE, _check_command

ROOT = Path(__file__).resolve().parents[2]
KUBERNETES = ROOT / "deploy" / "kubernetes"
BASE = KUBERNETES / "base"
OVERLAYS = ["demo", "production"]
# OpenShift 4.16's Kubernetes, the oldest these are meant for, and the newest the validator knows.
VERSIONS = ["1.29.0", kubernetes_validate.latest_version()]
SECRET_NAME = re.compile(r"SECRET|PASSWORD|TOKEN|_KEYS?$|API_KEY|DATABASE_URL|BROKER_URL|REDIS_URL|SMS_GATEWAY_URL")
CREDENTIALS_IN_URL = re.compile(r"\w+://[^/\s:@]*:[^/\s@]+@")
GUNICORN = runpy.run_path(str(ROOT / "kelabooking" / "gunicorn.conf.py"))


def _documents(path: Path) -> list[dict]:
    return [document for document in yaml.safe_load_all(path.read_text(encoding="utf-8")) if document]


def base_resources() -> list[dict]:
    kustomization = yaml.safe_load((BASE / "kustomization.yaml").read_text(encoding="utf-8"))
    return [document for name in kustomization["resources"] for document in _documents(BASE / name)]


def render(overlay: str) -> list[dict]:
    """The overlay as kustomize builds it (the standalone binary, or kubectl's built-in one)."""
    directory = str(KUBERNETES / "overlays" / overlay)
    command = ["kustomize", "build", directory] if shutil.which("kustomize") else ["kubectl", "kustomize", directory]
    built = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)  # noqa: S603
    assert built.returncode == 0, built.stderr
    return [document for document in yaml.safe_load_all(built.stdout) if document]


def of_kind(resources: list[dict], kind: str) -> dict[str, dict]:
    return {resource["metadata"]["name"]: resource for resource in resources if resource["kind"] == kind}


def deployment(resources: list[dict], component: str) -> dict:
    return of_kind(resources, "Deployment")[f"kelabooking-{component}"]


def pod_templates(resources: list[dict]) -> list[dict]:
    return [
        resource["spec"]["template"]
        for resource in resources
        if resource["kind"] in {"Deployment", "Job", "StatefulSet", "DaemonSet"}
    ]


def containers(pod: dict) -> list[dict]:
    return pod["spec"].get("initContainers", []) + pod["spec"]["containers"]


def main_container(resources: list[dict], component: str) -> dict:
    return deployment(resources, component)["spec"]["template"]["spec"]["containers"][0]


def exec_code(probe: dict) -> str:
    command = probe["exec"]["command"]
    assert command[:2] == ["python", "-c"]
    return command[2]


def validate(resources: list[dict]) -> None:
    for version in VERSIONS:
        for resource in resources:
            kubernetes_validate.validate(copy.deepcopy(resource), version, strict=True)


# --- The invariants, checked on the base files and on each rendered overlay ------------------------------------------


def check_invariants(resources: list[dict]) -> None:
    _check_beat_is_one(resources)
    _check_every_deployment_has_probes(resources)
    _check_web(resources)
    _check_worker(resources)
    _check_migrate_job(resources)
    _check_no_literal_secret(resources)
    _check_restricted_security(resources)
    _check_network_policy(resources)
    _check_commands(resources)
    _check_metrics(resources)
    _check_shared_secret_and_cache(resources)


def _check_beat_is_one(resources: list[dict]) -> None:
    beat = deployment(resources, "beat")
    assert beat["spec"]["replicas"] == 1
    assert beat["spec"]["strategy"] == {"type": "Recreate"}
    liveness = main_container(resources, "beat")["livenessProbe"]
    assert exec_code(liveness) == COMPOSE["services"]["beat"]["healthcheck"]["test"][3]  # tests/kelabooking/test_beat
    command = main_container(resources, "beat")["command"]
    assert f"'{command[command.index('--schedule') + 1]}.heartbeat'" in exec_code(liveness)


def _check_every_deployment_has_probes(resources: list[dict]) -> None:
    deployments = of_kind(resources, "Deployment")
    assert set(deployments) == {"kelabooking-web", "kelabooking-worker", "kelabooking-beat"}
    for name, resource in deployments.items():
        for container in resource["spec"]["template"]["spec"]["containers"]:
            assert "readinessProbe" in container, name
            assert "livenessProbe" in container, name
            assert container["resources"]["requests"]["cpu"], name
            assert container["resources"]["requests"]["memory"], name
            assert container["resources"]["limits"]["memory"], name


def _check_web(resources: list[dict]) -> None:
    web = deployment(resources, "web")
    pod = web["spec"]["template"]
    container = main_container(resources, "web")
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    # The probes pass Django's host validation: they send the site's own name.
    config = of_kind(resources, "ConfigMap")["kelabooking-config"]["data"]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        headers = {header["name"]: header["value"] for header in container[probe]["httpGet"]["httpHeaders"]}
        assert headers["Host"] in config["ALLOWED_HOSTS"].split(","), probe
        assert headers["X-Forwarded-Proto"] == "https"
    assert config["USE_X_FORWARDED_PROTO"] == "1"
    # The ingress is every request's peer: the client's address is the one it adds to X-Forwarded-For, or every
    # client would share one rate limit and the audit trail would record the ingress's address.
    assert int(config["NUM_PROXIES"]) >= 1
    # Graceful stop: the endpoints drop the pod during preStop, then gunicorn finishes requests in flight.
    pre_stop = container["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep"
    assert pod["spec"]["terminationGracePeriodSeconds"] > int(pre_stop[1]) + GUNICORN["graceful_timeout"]
    assert web["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    # A disruption budget that keeps a web pod serving, and a Service that reaches them.
    budgets = of_kind(resources, "PodDisruptionBudget")
    assert budgets["kelabooking-web"]["spec"]["selector"]["matchLabels"] == web["spec"]["selector"]["matchLabels"]
    assert budgets["kelabooking-web"]["spec"]["maxUnavailable"] == 1
    service = of_kind(resources, "Service")["kelabooking-web"]
    assert service["spec"]["selector"] == web["spec"]["selector"]["matchLabels"]
    assert service["spec"]["ports"][0]["targetPort"] in {port["name"] for port in container["ports"]}


def _check_worker(resources: list[dict]) -> None:
    pod = deployment(resources, "worker")["spec"]["template"]
    assert pod["spec"]["terminationGracePeriodSeconds"] >= settings.CELERY_WORKER_SOFT_SHUTDOWN_TIMEOUT + 15
    container = main_container(resources, "worker")
    assert exec_code(container["livenessProbe"]) == COMPOSE["services"]["worker"]["healthcheck"]["test"][3]


def _check_migrate_job(resources: list[dict]) -> None:
    job = of_kind(resources, "Job")["kelabooking-migrate"]
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert "manage.py migrate --noinput" in " ".join(container["command"])
    env = {variable["name"]: variable for variable in container["env"]}
    assert env["DATABASE_URL"]["valueFrom"]["secretKeyRef"] == {"name": "kelabooking-owner", "key": "DATABASE_URL"}
    assert env["DATABASE_APP_ROLE"]["value"] == "kelabooking_app"
    # The new pods wait for it: each Deployment's init container fails while a migration is unapplied.
    for name, resource in of_kind(resources, "Deployment").items():
        waits = resource["spec"]["template"]["spec"]["initContainers"]
        assert [init["command"] for init in waits] == [["python", "manage.py", "migrate", "--check"]], name


def _check_no_literal_secret(resources: list[dict]) -> None:
    assert not of_kind(resources, "Secret"), "Secrets are made in the cluster (secret.example.yaml), never here"
    for config in of_kind(resources, "ConfigMap").values():
        for key, value in config["data"].items():
            assert not SECRET_NAME.search(key), key
            assert not CREDENTIALS_IN_URL.search(value), key
    for pod in pod_templates(resources):
        for container in containers(pod):
            for variable in container.get("env", []):
                if SECRET_NAME.search(variable["name"]):
                    assert "value" not in variable, variable["name"]
                    assert "secretKeyRef" in variable["valueFrom"], variable["name"]
            for source in container.get("envFrom", []):
                assert set(source) <= {"configMapRef", "secretRef"}
    text = yaml.safe_dump_all(resources)
    assert not CREDENTIALS_IN_URL.search(text)


def _check_restricted_security(resources: list[dict]) -> None:
    """OpenShift's restricted-v2 (and Kubernetes' restricted Pod Security Standard): non-root with no fixed UID, no
    privilege escalation, no capabilities, the runtime's seccomp profile; and a read-only root with /tmp in memory."""
    for pod in pod_templates(resources):
        spec = pod["spec"]
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        assert "runAsUser" not in spec["securityContext"]
        assert spec["automountServiceAccountToken"] is False
        volumes = {volume["name"]: volume for volume in spec["volumes"]}
        for container in containers(pod):
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False, container["name"]
            assert context["readOnlyRootFilesystem"] is True, container["name"]
            assert context["capabilities"] == {"drop": ["ALL"]}, container["name"]
            assert "runAsUser" not in context, container["name"]
            assert context.get("privileged", False) is False
            mounts = {mount["mountPath"]: mount["name"] for mount in container["volumeMounts"]}
            assert "emptyDir" in volumes[mounts["/tmp"]], container["name"]  # noqa: S108 - the pod's own emptyDir


def _check_network_policy(resources: list[dict]) -> None:
    policies = of_kind(resources, "NetworkPolicy")
    deny = policies["kelabooking-default-deny"]["spec"]
    assert deny["podSelector"] == {"matchLabels": {"app.kubernetes.io/name": "kelabooking"}}
    assert sorted(deny["policyTypes"]) == ["Egress", "Ingress"]
    assert "ingress" not in deny
    assert "egress" not in deny
    web_ingress = policies["kelabooking-web-ingress"]["spec"]
    assert web_ingress["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "web"
    assert [port["port"] for rule in web_ingress["ingress"] for port in rule["ports"]] == [8000]
    # Only the ingress reaches the pages: the client's address is the last X-Forwarded-For hop (NUM_PROXIES).
    for rule in web_ingress["ingress"]:
        assert all(peer not in MONITORING for peer in rule["from"]), rule
        assert all("ingress" in json.dumps(peer) for peer in rule["from"]), rule


MONITORING = [
    {"namespaceSelector": {"matchLabels": {"network.openshift.io/policy-group": "monitoring"}}},
    {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}},
]


def _env(container: dict) -> dict[str, str]:
    return {variable["name"]: variable.get("value") for variable in container.get("env", [])}


def _check_metrics(resources: list[dict]) -> None:
    """Web and the worker count in a directory of their own pod's emptyDir (the root is read-only; their start empties
    it); each serves /metrics on its metrics port, which only the monitoring namespaces reach."""
    for component in ("web", "worker"):
        container = main_container(resources, component)
        directory = Path(_env(container)["PROMETHEUS_MULTIPROC_DIR"])
        volumes = {
            volume["name"]: volume for volume in deployment(resources, component)["spec"]["template"]["spec"]["volumes"]
        }
        [mount] = [mount for mount in container["volumeMounts"] if Path(mount["mountPath"]) == directory]
        assert "emptyDir" in volumes[mount["name"]], component
        assert directory.is_relative_to("/tmp"), component  # noqa: S108 - the pod's own emptyDir
    for component in ("web", "worker"):
        container = main_container(resources, component)
        ports = {port["name"]: port["containerPort"] for port in container["ports"]}
        assert int(_env(container)["METRICS_PORT"]) == ports["metrics"], component
        # Whatever policy lets traffic reach the metrics port lets only the monitoring namespaces in, to that port.
        labels = deployment(resources, component)["spec"]["template"]["metadata"]["labels"]
        reaching = []
        for policy in of_kind(resources, "NetworkPolicy").values():
            if not _selects(policy["spec"]["podSelector"], labels):
                continue
            for rule in policy["spec"].get("ingress", []):
                if not rule.get("ports") or ports["metrics"] in {port["port"] for port in rule["ports"]}:
                    reaching.append(rule)
        assert reaching, component
        for rule in reaching:
            assert rule["from"] == MONITORING, component
            assert [port["port"] for port in rule["ports"]] == [ports["metrics"]], component


def _selects(selector: dict, labels: dict[str, str]) -> bool:
    """Whether a label selector (matchLabels, and matchExpressions with In) selects pods with these labels."""
    if not selector.get("matchLabels", {}).items() <= labels.items():
        return False
    for expression in selector.get("matchExpressions", []):
        assert expression["operator"] == "In", expression  # the only one these manifests use
        if labels.get(expression["key"]) not in expression["values"]:
            return False
    return True


def _check_shared_secret_and_cache(resources: list[dict]) -> None:
    """Web, worker and beat take the whole Secret `kelabooking` (REDIS_URL for the cache that carries beat's and the
    workers' periodic task times to /metrics, METRICS_TOKEN, the staff client's secret) and the ConfigMap."""
    for component in ("web", "worker", "beat"):
        sources = main_container(resources, component)["envFrom"]
        assert {"secretRef": {"name": "kelabooking"}} in sources, component
        assert {"configMapRef": {"name": "kelabooking-config"}} in sources, component
        assert "REDIS_URL" not in _env(main_container(resources, component)), component
    example = {secret["metadata"]["name"]: secret for secret in _documents(KUBERNETES / "secret.example.yaml")}
    assert {"REDIS_URL", "METRICS_TOKEN", "STAFF_OIDC_RP_CLIENT_SECRET"} <= set(example["kelabooking"]["stringData"])


def _check_commands(resources: list[dict]) -> None:
    """Each container runs something that exists here (the checks shared with tests/test_compose.py)."""
    for pod in pod_templates(resources):
        for container in containers(pod):
            command = container["command"]
            for argv in [part.split() for part in command[2].split("&&")] if command[:2] == ["sh", "-c"] else [command]:
                _check_command(argv)


# --- Tests ------------------------------------------------------------------------------------------------------------


def test_manifests__base__every_resource_passes_the_schema_strictly() -> None:
    resources = base_resources()
    assert len(resources) >= 10
    validate(resources)


def test_manifests__base__invariants() -> None:
    resources = base_resources()
    check_invariants(resources)
    assert deployment(resources, "web")["spec"]["replicas"] >= 2


def test_manifests__validator__refuses_a_misspelt_field() -> None:
    """The strict schema check is real: a field Kubernetes does not know fails it."""
    resource = copy.deepcopy(deployment(base_resources(), "web"))
    resource["spec"]["template"]["spec"]["containers"][0]["livenesProbe"] = {"exec": {"command": ["true"]}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(resource, VERSIONS[0], strict=True)


def test_manifests__secret_example__valid__placeholders_only() -> None:
    secrets = _documents(KUBERNETES / "secret.example.yaml")
    validate(secrets)
    assert {secret["metadata"]["name"] for secret in secrets} == {"kelabooking", "kelabooking-owner"}
    for secret in secrets:
        assert "data" not in secret
        for key, value in secret["stringData"].items():
            assert value.startswith("<") and value.endswith(">"), key  # noqa: PT018 - one placeholder rule
    # It names every key the manifests take from a Secret by name.
    referenced = set()
    for pod in pod_templates(base_resources()):
        for container in containers(pod):
            for variable in container.get("env", []):
                reference = variable.get("valueFrom", {}).get("secretKeyRef")
                if reference:
                    referenced.add((reference["name"], reference["key"]))
    given = {(secret["metadata"]["name"], key) for secret in secrets for key in secret["stringData"]}
    assert referenced <= given


@pytest.mark.kustomize
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_manifests__overlay__renders_passes_the_schema_strictly_and_keeps_the_invariants(overlay: str) -> None:
    resources = render(overlay)
    validate(resources)
    check_invariants(resources)
    namespaces = {resource["metadata"].get("namespace") for resource in resources}
    assert namespaces == {"kelabooking" if overlay == "production" else "kelabooking-demo"}
    images = {container["image"] for pod in pod_templates(resources) for container in containers(pod)}
    assert len(images) == 1
    assert not images.pop().endswith(":latest")


@pytest.mark.kustomize
def test_manifests__production__several_web_pods__no_demo() -> None:
    resources = render("production")
    assert deployment(resources, "web")["spec"]["replicas"] >= 2
    config = of_kind(resources, "ConfigMap")["kelabooking-config"]["data"]
    demo = ("SUOMIFI_SANDBOX", "SUOMIFI_SANDBOX_PUBLIC_DEMO", "LOAD_DEMO_DATA")
    assert [config[name] for name in demo] == ["0", "0", "0"]
    assert config["DEBUG"] == "0"


@pytest.mark.kustomize
def test_manifests__demo__sandbox_and_demo_data_with_the_sandbox_image_and_one_web_pod_for_its_keys() -> None:
    resources = render("demo")
    config = of_kind(resources, "ConfigMap")["kelabooking-config"]["data"]
    demo = ("SUOMIFI_SANDBOX", "SUOMIFI_SANDBOX_PUBLIC_DEMO", "LOAD_DEMO_DATA")
    assert [config[name] for name in demo] == ["1", "1", "1"]
    assert main_container(resources, "web")["image"].split(":")[0].endswith("kelabooking-demo")
    job = of_kind(resources, "Job")["kelabooking-migrate"]["spec"]["template"]["spec"]["containers"][0]
    assert "python manage.py load_demo" in job["command"][2]
    web = deployment(resources, "web")["spec"]
    assert web["replicas"] == 1
    mounts = {mount["mountPath"] for mount in web["template"]["spec"]["containers"][0]["volumeMounts"]}
    assert "/app/var" in mounts


# --- Staff sign-in: production configures it (no W101, no W102), the demo keeps the sandbox's staff mode ------------


def _secret_values(*, leave_out: tuple[str, ...] = ()) -> dict[str, str]:
    """The Secret `kelabooking` as an operator makes it from secret.example.yaml: a value of one's own for each key."""
    [secret] = [s for s in _documents(KUBERNETES / "secret.example.yaml") if s["metadata"]["name"] == "kelabooking"]
    made = {
        "SECRET_KEY": secrets.token_urlsafe(50),
        "IDENTITY_CODE_ENCRYPTION_KEYS": crypto.new_encryption_key(),
        "IDENTITY_CODE_HMAC_KEYS": crypto.new_hmac_key(),
        "DATABASE_URL": "postgres://kelabooking_app:" + secrets.token_hex(16) + "@db.kela.example:5432/kelabooking",
        "CELERY_BROKER_URL": "redis://:" + secrets.token_hex(16) + "@redis.kela.example:6379/0",
        "REDIS_URL": "redis://:" + secrets.token_hex(16) + "@redis.kela.example:6379/1",
        "SMS_GATEWAY_URL": "https://sms.kela.example/send",
        "EMAIL_HOST_USER": "kelabooking",
        "STAFF_BREAK_GLASS_USERS": "fpa-break-glass",
    }
    return {key: made.get(key, secrets.token_urlsafe(32)) for key in secret["stringData"] if key not in leave_out}


def _pod_environment(resources: list[dict], **secret: str) -> dict[str, str]:
    """What a pod's settings read from the ConfigMap and the Secret (envFrom, the Secret last)."""
    return {**of_kind(resources, "ConfigMap")["kelabooking-config"]["data"], **secret}


@pytest.mark.kustomize
def test_manifests__production__staff_sign_in_configured__deploy_check_without_w101_or_w102() -> None:
    resources = render("production")
    config = of_kind(resources, "ConfigMap")["kelabooking-config"]["data"]
    assert config["STAFF_OIDC_OP_ISSUER"].startswith("https://")
    assert config["STAFF_OIDC_RP_CLIENT_ID"]
    assert json.loads(config["STAFF_OIDC_GROUP_MAP"])
    # As .ci/run checks the settings: every warning fails (W101 without staff sign-in, W102 without break-glass).
    result = run_manage(
        "manage.py", "check", "--deploy", "--fail-level", "WARNING", env=_pod_environment(resources, **_secret_values())
    )
    assert result.returncode == 0, result.stdout + result.stderr
    # The client secret is the Secret's: without it, no start (partners.E102).
    result = run_manage(
        "manage.py",
        "check",
        env=_pod_environment(resources, **_secret_values(leave_out=("STAFF_OIDC_RP_CLIENT_SECRET",))),
    )
    assert "partners.E102" in result.stderr, result.stdout + result.stderr


@pytest.mark.kustomize
def test_manifests__demo__staff_sign_in_through_the_sandbox_staff_mode() -> None:
    resources = render("demo")
    config = of_kind(resources, "ConfigMap")["kelabooking-config"]["data"]
    assert not [key for key in config if key.startswith("STAFF_")]
    secret = _secret_values(leave_out=("STAFF_OIDC_RP_CLIENT_SECRET", "STAFF_BREAK_GLASS_USERS"))
    staff = settings_in_fresh_process(
        _pod_environment(resources, **secret), "STAFF_OIDC_ENABLED", "STAFF_OIDC_OP_ISSUER", "STAFF_OIDC_RP_CLIENT_ID"
    )
    assert staff == {
        "STAFF_OIDC_ENABLED": True,
        "STAFF_OIDC_OP_ISSUER": f"{config['SUOMIFI_SANDBOX_BASE_URL']}/sandbox/staff-oidc",
        "STAFF_OIDC_RP_CLIENT_ID": "kelabooking-staff-sandbox",
    }
