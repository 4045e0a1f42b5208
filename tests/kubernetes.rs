//! The kustomize base (deploy/kubernetes) and the Dockerfile, checked against the binary they
//! ship: `kubectl kustomize` renders the base, and every probe path, port, environment
//! variable and shutdown figure in it must be what modelgate really serves, listens on, reads
//! and takes. A manifest that names a path the router does not serve, or a variable nothing
//! reads, would otherwise only show in a cluster (pods restarted by liveness, settings
//! silently at their defaults).

mod support;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use modelgate::config::{documented_env_vars, Config};
use support::{Backend, TestApp};
use yaml_rust2::{Yaml, YamlLoader};

fn repo(path: &str) -> String {
    std::fs::read_to_string(support::repo_path(path)).expect(path)
}

/// The base as `kubectl kustomize` renders it (kubectl must be installed: this fails without).
fn rendered() -> Vec<Yaml> {
    let output = Command::new("kubectl")
        .args(["kustomize", "deploy/kubernetes"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap_or_else(|err| panic!("cannot run kubectl ({err}): install kubectl (1.27+)"));
    assert!(
        output.status.success(),
        "kubectl kustomize deploy/kubernetes failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    YamlLoader::load_from_str(&String::from_utf8_lossy(&output.stdout)).expect("rendered YAML")
}

/// The one rendered object of `kind`.
fn one<'a>(docs: &'a [Yaml], kind: &str) -> &'a Yaml {
    let found: Vec<&Yaml> = docs
        .iter()
        .filter(|doc| doc["kind"].as_str() == Some(kind))
        .collect();
    assert_eq!(found.len(), 1, "expected one {kind} in the base");
    found[0]
}

fn items(yaml: &Yaml) -> &[Yaml] {
    yaml.as_vec().map(Vec::as_slice).unwrap_or_default()
}

fn text(yaml: &Yaml) -> String {
    match yaml {
        Yaml::String(s) | Yaml::Real(s) => s.clone(),
        Yaml::Integer(i) => i.to_string(),
        Yaml::Boolean(b) => b.to_string(),
        other => panic!("expected a scalar, got {other:?}"),
    }
}

fn pod(docs: &[Yaml]) -> &Yaml {
    &one(docs, "Deployment")["spec"]["template"]["spec"]
}

fn container(docs: &[Yaml]) -> &Yaml {
    let containers = items(&pod(docs)["containers"]);
    assert_eq!(containers.len(), 1, "one container");
    &containers[0]
}

/// Every environment variable the pod gets: its ConfigMap, its Secret and its own `env`.
fn pod_env(docs: &[Yaml]) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    let mut add = |table: &Yaml| {
        for (name, value) in table.as_hash().into_iter().flatten() {
            env.insert(text(name), text(value));
        }
    };
    add(&one(docs, "ConfigMap")["data"]);
    let secret = one(docs, "Secret");
    assert!(
        secret["data"].is_badvalue(),
        "the base's Secret holds placeholders in stringData, never encoded data"
    );
    add(&secret["stringData"]);
    for var in items(&container(docs)["env"]) {
        env.insert(text(&var["name"]), text(&var["value"]));
    }
    let from: BTreeSet<String> = items(&container(docs)["envFrom"])
        .iter()
        .map(|source| {
            let reference = if source["configMapRef"].is_badvalue() {
                &source["secretRef"]
            } else {
                &source["configMapRef"]
            };
            text(&reference["name"])
        })
        .collect();
    let expected: BTreeSet<String> = ["ConfigMap", "Secret"]
        .iter()
        .map(|kind| text(&one(docs, kind)["metadata"]["name"]))
        .collect();
    assert_eq!(
        from, expected,
        "envFrom must name the base's ConfigMap and Secret"
    );
    env
}

/// The configuration a pod runs with (validated as at start), from the variables it gets.
fn config_of(env: &BTreeMap<String, String>) -> Config {
    let vars: HashMap<String, String> = env.clone().into_iter().collect();
    Config::load_from(None, &vars).unwrap_or_else(|err| panic!("the pod's settings: {err}"))
}

/// The variables modelgate reads as settings, by name.
fn known_variables() -> BTreeSet<String> {
    documented_env_vars().into_iter().map(|v| v.name).collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Listener {
    Http,
    Grpc,
    Admin,
}

/// Each port the configuration binds, and which listener binds it. Every address must be
/// reachable from outside the container (all interfaces).
fn listeners(config: &Config) -> BTreeMap<u16, Listener> {
    let mut ports = BTreeMap::new();
    let addrs = [
        (Some(config.listen), Listener::Http),
        (config.grpc_listen.0, Listener::Grpc),
        (config.server.admin_listen, Listener::Admin),
    ];
    for (addr, listener) in addrs {
        let Some(addr) = addr else { continue };
        assert!(
            addr.ip().is_unspecified(),
            "{listener:?} binds {addr}: unreachable from outside the container"
        );
        assert!(
            ports.insert(addr.port(), listener).is_none(),
            "two listeners on port {}",
            addr.port()
        );
    }
    ports
}

/// The container's ports by name.
fn container_ports(docs: &[Yaml]) -> BTreeMap<String, u16> {
    items(&container(docs)["ports"])
        .iter()
        .map(|port| {
            let number = port["containerPort"].as_i64().expect("containerPort");
            (
                text(&port["name"]),
                u16::try_from(number).expect("a port number"),
            )
        })
        .collect()
}

/// A probe's or a Service's port (a name or a number) as a container port number.
fn resolve_port(docs: &[Yaml], port: &Yaml) -> u16 {
    match port {
        Yaml::Integer(n) => u16::try_from(*n).expect("a port number"),
        other => {
            let name = text(other);
            *container_ports(docs)
                .get(&name)
                .unwrap_or_else(|| panic!("no container port named {name}"))
        }
    }
}

/// `(probe, path, container port)` of every HTTP probe of the container.
fn probes(docs: &[Yaml]) -> Vec<(&'static str, String, u16)> {
    let container = container(docs);
    ["startupProbe", "livenessProbe", "readinessProbe"]
        .into_iter()
        .map(|probe| {
            let get = &container[probe]["httpGet"];
            assert!(!get.is_badvalue(), "{probe} must be an httpGet probe");
            (probe, text(&get["path"]), resolve_port(docs, &get["port"]))
        })
        .collect()
}

/// The preStop pause: `sleep N` (exec) or Kubernetes' own `sleep.seconds`.
fn pre_stop_pause(docs: &[Yaml]) -> Duration {
    let pre_stop = &container(docs)["lifecycle"]["preStop"];
    if let Some(seconds) = pre_stop["sleep"]["seconds"].as_i64() {
        return Duration::from_secs(u64::try_from(seconds).expect("seconds"));
    }
    let command: Vec<String> = items(&pre_stop["exec"]["command"])
        .iter()
        .map(text)
        .collect();
    match command.as_slice() {
        [sleep, seconds] if sleep.ends_with("sleep") => {
            Duration::from_secs(seconds.parse().expect("whole seconds"))
        }
        other => panic!("preStop must be a sleep, not {other:?}"),
    }
}

/// A Kubernetes quantity such as `3Gi` in bytes.
fn bytes(quantity: &str) -> u64 {
    let units = [
        ("Ki", 1u64 << 10),
        ("Mi", 1 << 20),
        ("Gi", 1 << 30),
        ("Ti", 1 << 40),
    ];
    for (suffix, scale) in units {
        if let Some(number) = quantity.strip_suffix(suffix) {
            return number.parse::<u64>().expect("a whole quantity") * scale;
        }
    }
    quantity.parse().expect("a quantity in bytes")
}

#[test]
fn every_variable_in_the_manifests_is_one_modelgate_reads() {
    let docs = rendered();
    let env = pod_env(&docs);
    assert!(env.contains_key("MODELGATE_DATABASE_URL"), "{env:?}");
    let known = known_variables();
    for name in env.keys() {
        assert!(
            known.contains(name),
            "{name} is set in deploy/kubernetes but modelgate reads no such variable"
        );
    }
    let config = config_of(&env);
    assert!(
        !config.database.is_sqlite(),
        "pods share PostgreSQL, not a file each"
    );
}

#[test]
fn container_ports_are_the_ports_modelgate_listens_on() {
    let docs = rendered();
    let config = config_of(&pod_env(&docs));
    let listening: BTreeSet<u16> = listeners(&config).into_keys().collect();
    let declared: BTreeSet<u16> = container_ports(&docs).into_values().collect();
    assert_eq!(
        declared, listening,
        "container ports vs configured listeners"
    );

    let service = one(&docs, "Service");
    let mut service_ports = BTreeMap::new();
    for port in items(&service["spec"]["ports"]) {
        let target = resolve_port(&docs, &port["targetPort"]);
        service_ports.insert(text(&port["name"]), target);
    }
    assert_eq!(
        service_ports.values().copied().collect::<BTreeSet<_>>(),
        listening,
        "the Service must expose every listener"
    );
    let monitor = one(&docs, "ServiceMonitor");
    for endpoint in items(&monitor["spec"]["endpoints"]) {
        let name = text(&endpoint["port"]);
        assert!(
            service_ports.contains_key(&name),
            "ServiceMonitor scrapes port {name}, which the Service does not have"
        );
    }
}

#[test]
fn termination_grace_outlasts_the_pre_stop_pause_and_the_shutdown() {
    let docs = rendered();
    let config = config_of(&pod_env(&docs));
    let pause = pre_stop_pause(&docs);
    let termination = pod(&docs)["terminationGracePeriodSeconds"]
        .as_i64()
        .expect("terminationGracePeriodSeconds");
    let termination = Duration::from_secs(u64::try_from(termination).expect("seconds"));
    // After SIGTERM, in-flight requests get shutdown_grace, then the events writer gets
    // another to hand its queue to a sink or the outbox (App::serve).
    let needed = pause + config.shutdown_grace * 2;
    assert!(
        termination > needed,
        "terminationGracePeriodSeconds {termination:?} must exceed the preStop pause \
         {pause:?} plus twice shutdown_grace {:?}",
        config.shutdown_grace
    );
    assert!(
        config.shutdown_grace >= Config::default().shutdown_grace,
        "the base shortens shutdown_grace"
    );
}

#[test]
fn writable_folders_are_volumes_large_enough_for_the_outbox() {
    let docs = rendered();
    let config = config_of(&pod_env(&docs));
    let pod = pod(&docs);
    let container = container(&docs);
    assert_eq!(
        container["securityContext"]["readOnlyRootFilesystem"].as_bool(),
        Some(true)
    );
    assert_eq!(pod["securityContext"]["runAsNonRoot"].as_bool(), Some(true));
    let mounts: BTreeMap<String, String> = items(&container["volumeMounts"])
        .iter()
        .map(|m| (text(&m["mountPath"]), text(&m["name"])))
        .collect();
    // The root filesystem is read-only: each folder modelgate writes must be on a volume.
    let volume_of = |dir: &Path| -> String {
        mounts
            .iter()
            .find(|(path, _)| dir.starts_with(path.as_str()))
            .map(|(_, name)| name.clone())
            .unwrap_or_else(|| panic!("{} is on the read-only root filesystem", dir.display()))
    };
    let outbox = volume_of(&config.events.outbox_dir);
    volume_of(&config.models.cache_dir);
    let volume = items(&pod["volumes"])
        .iter()
        .find(|v| text(&v["name"]) == outbox)
        .expect("the outbox's volume");
    // Past its sizeLimit the kubelet evicts the pod: the outbox and the journal at their caps
    // must fit.
    let limit = bytes(&text(&volume["emptyDir"]["sizeLimit"]));
    let needed = config.events.outbox_max_bytes + config.events.journal_max_bytes;
    assert!(
        limit > needed,
        "the outbox volume's sizeLimit ({limit} bytes) must exceed events.outbox_max_bytes \
         plus events.journal_max_bytes ({needed} bytes)"
    );
}

#[test]
fn autoscaler_and_disruption_budget_fit_the_deployment() {
    let docs = rendered();
    let deployment = one(&docs, "Deployment");
    let pod_labels = &deployment["spec"]["template"]["metadata"]["labels"];
    let hpa = one(&docs, "HorizontalPodAutoscaler");
    assert_eq!(hpa["apiVersion"].as_str(), Some("autoscaling/v2"));
    assert_eq!(
        text(&hpa["spec"]["scaleTargetRef"]["name"]),
        text(&deployment["metadata"]["name"])
    );
    let metric = &items(&hpa["spec"]["metrics"])[0];
    assert_eq!(text(&metric["resource"]["name"]), "cpu");
    // CPU utilization is a share of the request: without one the HPA cannot act.
    assert!(!container(&docs)["resources"]["requests"]["cpu"].is_badvalue());
    let min = hpa["spec"]["minReplicas"].as_i64().expect("minReplicas");
    assert!(min >= 2, "one replica cannot survive a node drain");

    for kind in ["PodDisruptionBudget", "Service"] {
        let selector = match kind {
            "Service" => &one(&docs, kind)["spec"]["selector"],
            _ => &one(&docs, kind)["spec"]["selector"]["matchLabels"],
        };
        for (key, value) in selector.as_hash().expect("a selector") {
            assert_eq!(
                &pod_labels[text(key).as_str()],
                value,
                "{kind} selects {key:?}"
            );
        }
    }
    let budget = &one(&docs, "PodDisruptionBudget")["spec"];
    if let Some(unavailable) = budget["maxUnavailable"].as_i64() {
        assert!(unavailable < min, "the budget would allow every pod down");
    }
}

/// A YAML value as JSON, so that maps compare without regard to order (kustomize sorts keys).
fn canonical(yaml: &Yaml) -> serde_json::Value {
    use serde_json::Value;
    match yaml {
        Yaml::Hash(map) => Value::Object(
            map.iter()
                .map(|(key, value)| (text(key), canonical(value)))
                .collect(),
        ),
        Yaml::Array(list) => Value::Array(list.iter().map(canonical).collect()),
        Yaml::Null => Value::Null,
        scalar => Value::String(text(scalar)),
    }
}

#[test]
fn prometheus_rule_groups_are_the_alert_rules() {
    let docs = rendered();
    let rule = one(&docs, "PrometheusRule");
    let alerts = YamlLoader::load_from_str(&repo("deploy/prometheus/alerts.yml")).expect("YAML");
    assert!(!items(&alerts[0]["groups"]).is_empty());
    assert!(
        canonical(&rule["spec"]["groups"]) == canonical(&alerts[0]["groups"]),
        "deploy/kubernetes/prometheusrule.yaml differs from deploy/prometheus/alerts.yml: \
         run deploy/kubernetes/prometheusrule.sh"
    );
}

/// The real app, configured as a pod is (but on ephemeral loopback ports, this test's
/// database and the repository's models), with every listener the pod has.
async fn app_as_configured(config: &Config) -> (TestApp, BTreeMap<u16, SocketAddr>) {
    let pod = config.clone();
    let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
    let cache = tempfile::tempdir().expect("model cache");
    let cache_dir = cache.path().to_path_buf();
    let app = TestApp::spawn_with(Backend::Sqlite, move |test| {
        let mut config = pod.clone();
        config.listen = loopback;
        config.grpc_listen.0 = pod.grpc_listen.0.map(|_| loopback);
        config.server.admin_listen = pod.server.admin_listen.map(|_| loopback);
        config.models_dir = test.models_dir.clone();
        config.models.cache_dir = cache_dir;
        config.database = test.database.clone();
        config.events.outbox_dir = test.events.outbox_dir.clone();
        config.events.stream = test.events.stream.clone();
        // The base's Redis is a placeholder host; probes must not depend on it anyway.
        config.redis.url = None;
        *test = config;
    })
    .await;
    let mut by_pod_port = BTreeMap::new();
    for (port, listener) in listeners(config) {
        let addr = match listener {
            Listener::Http => Some(app.addr),
            Listener::Grpc => app.grpc_addr,
            Listener::Admin => app.admin_addr,
        };
        by_pod_port.insert(port, addr.expect("the listener the pod has"));
    }
    (app, by_pod_port)
}

#[tokio::test]
async fn probes_and_scrapes_get_200_from_the_real_app() {
    let docs = rendered();
    let config = config_of(&pod_env(&docs));
    let (app, addrs) = app_as_configured(&config).await;
    let get = |port: u16, path: String| {
        let addr = addrs[&port];
        let client = app.client.clone();
        async move {
            let response = client
                .get(format!("http://{addr}{path}"))
                .send()
                .await
                .expect("answer");
            (
                response.status().as_u16(),
                response.text().await.unwrap_or_default(),
            )
        }
    };
    for (probe, path, port) in probes(&docs) {
        let (status, body) = get(port, path.clone()).await;
        assert_eq!(status, 200, "{probe} GET {path} on port {port}: {body}");
    }

    let service_ports: BTreeMap<String, u16> = items(&one(&docs, "Service")["spec"]["ports"])
        .iter()
        .map(|p| (text(&p["name"]), resolve_port(&docs, &p["targetPort"])))
        .collect();
    for endpoint in items(&one(&docs, "ServiceMonitor")["spec"]["endpoints"]) {
        let port = service_ports[&text(&endpoint["port"])];
        let path = text(&endpoint["path"]);
        let (status, body) = get(port, path.clone()).await;
        assert_eq!(status, 200, "scrape of {path} on port {port}");
        assert!(
            body.contains("modelgate_build_info"),
            "{path} is not modelgate's metrics"
        );
    }
    app.stop().await;
}

/// The Dockerfile's instructions, continuation lines joined, comments dropped.
fn dockerfile() -> Vec<(String, String)> {
    let mut instructions = Vec::new();
    let mut current = String::new();
    for line in repo("Dockerfile").lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') || (trimmed.is_empty() && current.is_empty()) {
            continue;
        }
        match trimmed.strip_suffix('\\') {
            Some(part) => current.push_str(part),
            None => {
                current.push_str(trimmed);
                let (word, rest) = current.split_once(' ').unwrap_or((&current, ""));
                instructions.push((word.to_ascii_uppercase(), rest.trim().to_string()));
                current.clear();
            }
        }
    }
    instructions
}

fn instructions<'a>(all: &'a [(String, String)], word: &str) -> Vec<&'a str> {
    all.iter()
        .filter(|(w, _)| w == word)
        .map(|(_, rest)| rest.as_str())
        .collect()
}

/// `ENV A=1 B=2` pairs of the runtime stage (the last `FROM` onwards).
fn dockerfile_env(all: &[(String, String)]) -> BTreeMap<String, String> {
    let runtime = all.iter().rposition(|(w, _)| w == "FROM").expect("FROM");
    instructions(&all[runtime..], "ENV")
        .iter()
        .flat_map(|rest| rest.split_whitespace())
        .map(|pair| {
            let (name, value) = pair.split_once('=').expect("ENV NAME=VALUE");
            (name.to_string(), value.to_string())
        })
        .collect()
}

#[test]
fn dockerfile_sets_variables_modelgate_reads_and_exposes_its_listeners() {
    let all = dockerfile();
    let env = dockerfile_env(&all);
    let known = known_variables();
    for name in env.keys() {
        assert!(
            known.contains(name),
            "the Dockerfile sets {name}, which nothing reads"
        );
    }
    let config = config_of(&env);
    let exposed: BTreeSet<u16> = instructions(&all, "EXPOSE")
        .iter()
        .flat_map(|rest| rest.split_whitespace())
        .map(|port| port.parse().expect("EXPOSE PORT"))
        .collect();
    let listening: BTreeSet<u16> = listeners(&config).into_keys().collect();
    assert_eq!(exposed, listening, "EXPOSE vs configured listeners");

    // The image and the base agree on where models and data are, and on the user.
    let docs = rendered();
    let pod_config = config_of(&pod_env(&docs));
    assert_eq!(config.models_dir, pod_config.models_dir);
    let user = instructions(&all, "USER")
        .last()
        .expect("USER")
        .split(':')
        .next()
        .expect("uid")
        .parse::<i64>()
        .expect("a numeric USER, so that runAsNonRoot can check it");
    assert_ne!(user, 0);
    assert_eq!(
        pod(&docs)["securityContext"]["runAsUser"].as_i64(),
        Some(user)
    );
    let data = Path::new("/var/lib/modelgate");
    assert!(config.events.outbox_dir.starts_with(data));
    let volumes = instructions(&all, "VOLUME").join(" ");
    assert!(volumes.contains("\"/var/lib/modelgate\""), "{volumes}");
}

#[test]
fn dockerfile_copies_what_exists_and_runs_the_binary_cargo_builds() {
    let all = dockerfile();
    let included: BTreeSet<String> = repo(".dockerignore")
        .lines()
        .filter_map(|line| line.trim().strip_prefix('!'))
        .map(str::to_string)
        .collect();
    let root = support::repo_path("");
    let mut binary = None;
    for copy in instructions(&all, "COPY") {
        let words: Vec<&str> = copy.split_whitespace().collect();
        let (destination, sources) = words.split_last().expect("COPY SRC DEST");
        if let Some(from) = sources.first().and_then(|w| w.strip_prefix("--from=")) {
            assert_eq!(from, "build");
            binary = Some(destination.to_string());
            continue;
        }
        for source in sources {
            assert!(
                root.join(source).exists(),
                "COPY {source}: no such file in the repository"
            );
            assert!(
                included.contains(*source),
                "COPY {source}: .dockerignore keeps it out of the build context"
            );
        }
    }
    let binary = binary.expect("the binary copied from the build stage");
    let built = Path::new(env!("CARGO_BIN_EXE_modelgate"))
        .file_name()
        .expect("binary name");
    assert_eq!(Path::new(&binary).file_name(), Some(built));
    let entrypoint: Vec<String> =
        serde_json::from_str(instructions(&all, "ENTRYPOINT")[0]).expect("exec-form ENTRYPOINT");
    assert_eq!(entrypoint, [binary]);
    let run = instructions(&all, "RUN").join("\n");
    assert!(run.contains("cargo build --release --locked"), "{run}");
}

/// The HEALTHCHECK's command exactly as Docker runs it (exec form), with `env` on top of the
/// image's.
fn healthcheck(env: &[(&str, String)]) -> std::process::Output {
    let all = dockerfile();
    let check = instructions(&all, "HEALTHCHECK")[0];
    let (_, command) = check.split_once("CMD ").expect("HEALTHCHECK ... CMD [...]");
    let argv: Vec<String> = serde_json::from_str(command).expect("exec-form CMD");
    let mut run = Command::new(&argv[0]);
    run.args(&argv[1..]).env_clear();
    run.envs(dockerfile_env(&all));
    run.envs(env.iter().map(|(k, v)| (*k, v.as_str())));
    run.output()
        .unwrap_or_else(|err| panic!("cannot run {}: {err}", argv[0]))
}

#[tokio::test]
async fn dockerfile_healthcheck_passes_on_a_live_server_and_fails_without_one() {
    let config = config_of(&dockerfile_env(&dockerfile()));
    let (app, _) = app_as_configured(&config).await;
    let admin = app
        .admin_addr
        .expect("the image turns the admin listener on");
    let passing = tokio::task::spawn_blocking(move || {
        healthcheck(&[("MODELGATE_SERVER_ADMIN_LISTEN", admin.to_string())])
    })
    .await
    .expect("healthcheck");
    assert!(
        passing.status.success(),
        "HEALTHCHECK against {admin}: {passing:?}"
    );
    app.stop().await;
    // Nothing listens there any more.
    let failing = tokio::task::spawn_blocking(move || {
        healthcheck(&[("MODELGATE_SERVER_ADMIN_LISTEN", admin.to_string())])
    })
    .await
    .expect("healthcheck");
    assert!(
        !failing.status.success(),
        "HEALTHCHECK passed with no server"
    );
}
