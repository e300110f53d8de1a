// Package deploy holds greeter's Kubernetes manifests and Dockerfile; its
// test decodes them strictly into Kubernetes' API types and checks them
// against greeter serve's own flags.
package deploy

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"
)

// decode reads file into obj, failing on any field the API type lacks.
func decode(t *testing.T, file string, obj any) {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.UnmarshalStrict(b, obj); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
}

// flagNames runs greeter CMD --help from the repository and returns the
// flags it lists.
func flagNames(t *testing.T, cmd string) map[string]bool {
	t.Helper()
	out, err := exec.Command("go", "-C", "..", "run", "./cmd/greeter", cmd, "--help").CombinedOutput()
	if err != nil && !strings.Contains(string(out), "Usage") {
		t.Fatalf("greeter %s --help: %v\n%s", cmd, err, out)
	}
	names := map[string]bool{}
	re := regexp.MustCompile(`^\s+-{1,2}([a-z0-9-]+)`)
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		if m := re.FindStringSubmatch(sc.Text()); m != nil {
			names[m[1]] = true
		}
	}
	if len(names) < 5 {
		t.Fatalf("greeter %s --help listed no flags:\n%s", cmd, out)
	}
	return names
}

// flags parses --name=value and --name arguments after the command.
func flags(t *testing.T, args []string, known map[string]bool, what string) map[string]string {
	t.Helper()
	got := map[string]string{}
	for _, a := range args[1:] {
		name, value, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !strings.HasPrefix(a, "-") {
			t.Errorf("%s: argument %q: want --name=value", what, a)
			continue
		}
		if !known[name] {
			t.Errorf("%s: --%s is not a flag of greeter %s", what, name, args[0])
		}
		got[name] = value
	}
	return got
}

func duration(t *testing.T, flags map[string]string, name string) time.Duration {
	t.Helper()
	d, err := time.ParseDuration(flags[name])
	if err != nil {
		t.Fatalf("--%s=%q: %v", name, flags[name], err)
	}
	return d
}

func TestManifests(t *testing.T) {
	var dep appsv1.Deployment
	decode(t, "deployment.yaml", &dep)
	var svc corev1.Service
	decode(t, "service.yaml", &svc)
	var job batchv1.Job
	decode(t, "client-job.yaml", &job)

	if dep.Kind != "Deployment" || svc.Kind != "Service" || job.Kind != "Job" {
		t.Fatalf("kinds: %q, %q, %q", dep.Kind, svc.Kind, job.Kind)
	}
	if dep.Spec.Replicas == nil || *dep.Spec.Replicas != 3 {
		t.Errorf("replicas = %v; want 3", dep.Spec.Replicas)
	}
	pod := dep.Spec.Template.Spec
	if len(pod.Containers) != 1 {
		t.Fatalf("%d containers; want 1", len(pod.Containers))
	}
	c := pod.Containers[0]
	if len(c.Args) == 0 || c.Args[0] != "serve" {
		t.Fatalf("args %v; want serve first", c.Args)
	}
	serve := flags(t, c.Args, flagNames(t, "serve"), "deployment.yaml")

	// One port everywhere: --addr, the container, both probes, the
	// Service.
	addr := serve["addr"]
	_, portText, ok := strings.Cut(addr, ":")
	port, err := strconv.Atoi(portText)
	if !ok || err != nil || strings.Contains(portText, ":") {
		t.Fatalf("--addr=%q: want :PORT (every interface)", addr)
	}
	// Every interface in plaintext: greeter serve refuses that
	// without --insecure, and the pod would never become ready.
	if _, tls := serve["tls-cert"]; !tls {
		if v, ok := serve["insecure"]; !ok || (v != "" && v != "true") {
			t.Errorf("--addr=%q without --tls-cert: greeter serve needs --insecure (not --insecure=%s) to serve plaintext beyond loopback", addr, v)
		}
	}
	if len(c.Ports) != 1 || c.Ports[0].ContainerPort != int32(port) || c.Ports[0].Name != "grpc" {
		t.Errorf("container ports %+v; want one named grpc on %d", c.Ports, port)
	}
	for name, p := range map[string]*corev1.Probe{"readiness": c.ReadinessProbe, "liveness": c.LivenessProbe} {
		if p == nil || p.GRPC == nil {
			t.Errorf("%s probe: %+v; want a native gRPC probe", name, p)
			continue
		}
		if p.GRPC.Port != int32(port) {
			t.Errorf("%s probe on port %d; want %d", name, p.GRPC.Port, port)
		}
		if s := p.GRPC.Service; s != nil && !slices.Contains([]string{"", "Greeter", "helloworld.Greeter"}, *s) {
			t.Errorf("%s probe asks for service %q, which greeter's health service does not know", name, *s)
		}
	}
	if len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].Port != int32(port) ||
		svc.Spec.Ports[0].TargetPort != intstr.FromString("grpc") {
		t.Errorf("service ports %+v; want %d to the container port named grpc", svc.Spec.Ports, port)
	}

	// The drain: readiness must fail within --drain-delay, and
	// Kubernetes must wait for the drain and the grace.
	r := c.ReadinessProbe
	if r != nil {
		drain := duration(t, serve, "drain-delay")
		grace := duration(t, serve, "grace")
		seen := time.Duration(r.PeriodSeconds*r.FailureThreshold) * time.Second
		if drain < seen {
			t.Errorf("--drain-delay=%v is shorter than the readiness probe takes to fail (%ds x %d = %v)", drain, r.PeriodSeconds, r.FailureThreshold, seen)
		}
		tgp := pod.TerminationGracePeriodSeconds
		if tgp == nil || time.Duration(*tgp)*time.Second < drain+grace {
			t.Errorf("terminationGracePeriodSeconds = %v; want at least --drain-delay + --grace = %v", tgp, drain+grace)
		}
		// The liveness probe sees NOT_SERVING from SIGTERM on too: it
		// must not fail (and have the kubelet kill the container)
		// before the drain and the grace are over.
		if l := c.LivenessProbe; l != nil && tgp != nil {
			fails := time.Duration(l.PeriodSeconds*l.FailureThreshold) * time.Second
			if fails <= drain+grace || fails <= time.Duration(*tgp)*time.Second {
				t.Errorf("the liveness probe fails after %ds x %d = %v of NOT_SERVING; want longer than --drain-delay + --grace (%v) and terminationGracePeriodSeconds (%ds)", l.PeriodSeconds, l.FailureThreshold, fails, drain+grace, *tgp)
			}
		}
	}

	// Requests and limits, and the memory limit handed to Go.
	for _, res := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		if _, ok := c.Resources.Requests[res]; !ok {
			t.Errorf("no %s request", res)
		}
		if _, ok := c.Resources.Limits[res]; !ok {
			t.Errorf("no %s limit", res)
		}
	}
	gomemlimit := false
	for _, e := range c.Env {
		if e.Name == "GOMEMLIMIT" && e.ValueFrom != nil && e.ValueFrom.ResourceFieldRef != nil && e.ValueFrom.ResourceFieldRef.Resource == "limits.memory" {
			gomemlimit = true
		}
	}
	if !gomemlimit {
		t.Error("no GOMEMLIMIT from limits.memory: the runtime would not know the container's limit")
	}
	if sc := pod.SecurityContext; sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || sc.RunAsUser == nil || *sc.RunAsUser == 0 {
		t.Errorf("pod security context %+v; want runAsNonRoot and a non-zero runAsUser", sc)
	}

	// The headless Service selects the pods.
	if svc.Spec.ClusterIP != corev1.ClusterIPNone {
		t.Errorf("service clusterIP = %q; want None (headless)", svc.Spec.ClusterIP)
	}
	for k, v := range svc.Spec.Selector {
		if dep.Spec.Template.Labels[k] != v {
			t.Errorf("service selects %s=%s, which the pods do not have", k, v)
		}
	}

	// The client reaches every pod through DNS, round robin.
	jc := job.Spec.Template.Spec.Containers
	if len(jc) != 1 || len(jc[0].Args) == 0 || jc[0].Args[0] != "bench" {
		t.Fatalf("job containers %+v; want one running bench", jc)
	}
	bench := flags(t, jc[0].Args, flagNames(t, "bench"), "client-job.yaml")
	want := regexp.MustCompile(fmt.Sprintf(`^dns:///%s\.[a-z0-9-]+\.svc\.cluster\.local:%d$`, regexp.QuoteMeta(svc.Name), port))
	if !want.MatchString(bench["addr"]) {
		t.Errorf("client --addr=%q; want dns:///%s.NAMESPACE.svc.cluster.local:%d", bench["addr"], svc.Name, port)
	}
	if bench["lb"] != "round_robin" {
		t.Errorf("client --lb=%q; want round_robin", bench["lb"])
	}
}

// The image is static, runs as a non-root user and serves on every
// interface, as the Deployment expects (in plaintext, which greeter serve
// refuses beyond loopback without --insecure).
func TestDockerfile(t *testing.T) {
	b, err := os.ReadFile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	df := string(b)
	for _, want := range []string{"CGO_ENABLED=0", "FROM scratch", "/etc/ssl/certs/ca-certificates.crt", "USER 65532:65532", `"--addr", ":50051", "--insecure"]`} {
		if !strings.Contains(df, want) {
			t.Errorf("Dockerfile lacks %q", want)
		}
	}
}
