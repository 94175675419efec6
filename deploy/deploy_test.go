package deploy

import (
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rwxfs/rwxfs/csi"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
)

const namespace = "rwxfs-system"

// rwxfsImage is the repository of the rwxfs image in the manifests.
const rwxfsImage = "ghcr.io/rwxfs/rwxfs"

// adminSecrets are the Secrets an administrator creates before applying a
// kustomization (docs/install.md says how); every other reference must
// resolve to an object of the kustomization.
var adminSecrets = map[string][]string{
	"overlays/external-etcd": {"rwxfs-etcd-client"},
}

// clusterScoped are the kinds without a namespace.
var clusterScoped = map[string]bool{
	"Namespace": true, "ClusterRole": true, "ClusterRoleBinding": true,
	"StorageClass": true, "CSIDriver": true, "VolumeSnapshotClass": true,
}

func TestNamesAndNamespaces(t *testing.T) {
	for dir, c := range decodeAll(t) {
		if c.namespaces[namespace] == nil {
			t.Errorf("%s: no Namespace %s", dir, namespace)
		}
		for _, o := range c.objs {
			id, name, ns := objectID(o), str(o, "metadata", "name"), str(o, "metadata", "namespace")
			if clusterScoped[str(o, "kind")] {
				if ns != "" {
					t.Errorf("%s: %s is cluster-scoped but names namespace %s", dir, id, ns)
				}
			} else if ns != namespace {
				t.Errorf("%s: %s is in namespace %q, want %s", dir, id, ns, namespace)
			}
			check := validation.IsDNS1123Subdomain
			if k := str(o, "kind"); k == "Service" || k == "Namespace" || k == "StatefulSet" {
				check = validation.IsDNS1123Label
			}
			if errs := check(name); len(errs) > 0 {
				t.Errorf("%s: %s: bad name: %v", dir, id, errs)
			}
			for _, path := range [][]string{{"metadata", "labels"}, {"spec", "template", "metadata", "labels"}} {
				ls, _ := dig(o, path...).(object)
				for k, v := range ls {
					s, _ := v.(string)
					if errs := append(validation.IsQualifiedName(k), validation.IsValidLabelValue(s)...); len(errs) > 0 {
						t.Errorf("%s: %s: label %s=%v: %v", dir, id, k, v, errs)
					}
				}
			}
		}
	}
}

func TestWorkloads(t *testing.T) {
	for dir, c := range decodeAll(t) {
		var rwxfsImages []string
		for _, w := range c.workloads {
			ctx := dir + ": " + w.id
			spec := w.template.Spec
			if w.kind == "Job" {
				if w.selector != nil {
					t.Errorf("%s: a Job's selector is generated; setting one breaks re-creation", ctx)
				}
			} else if sel, err := metav1.LabelSelectorAsSelector(w.selector); err != nil || w.selector == nil || sel.Empty() {
				t.Errorf("%s: selector %v: %v", ctx, w.selector, err)
			} else if !sel.Matches(labels.Set(w.template.Labels)) {
				t.Errorf("%s: selector %v does not match its pod labels %v", ctx, w.selector, w.template.Labels)
			}
			if spec.ServiceAccountName == "" || c.serviceAccounts[spec.ServiceAccountName] == nil {
				t.Errorf("%s: serviceAccountName %q does not exist", ctx, spec.ServiceAccountName)
			}
			if w.kind == "StatefulSet" {
				svc := c.services[w.serviceName]
				if svc == nil || svc.Spec.ClusterIP != corev1.ClusterIPNone || !selects(svc, w) {
					t.Errorf("%s: serviceName %q is not a headless Service selecting its pods", ctx, w.serviceName)
				}
			}
			if spec.HostNetwork && spec.DNSPolicy != corev1.DNSClusterFirstWithHostNet {
				t.Errorf("%s: host network pods resolve cluster names only with dnsPolicy ClusterFirstWithHostNet", ctx)
			}
			// Volumes: every mount names a volume or claim template; every
			// ConfigMap and Secret exists.
			vols := map[string]bool{}
			for _, v := range spec.Volumes {
				vols[v.Name] = true
				if v.ConfigMap != nil {
					c.needConfigMap(t, ctx, v.ConfigMap.Name, v.ConfigMap.Optional)
				}
				if v.Secret != nil {
					c.needSecret(t, dir, ctx, v.Secret.SecretName, v.Secret.Optional)
				}
			}
			for _, pvc := range w.claims {
				vols[pvc.Name] = true
				if pvc.Spec.Resources.Requests.Storage().IsZero() {
					t.Errorf("%s: claim template %s requests no storage", ctx, pvc.Name)
				}
			}
			serviced := servicedPorts(c, w)
			for _, ct := range allContainers(spec) {
				cctx := ctx + " container " + ct.Name
				for _, m := range ct.VolumeMounts {
					if !vols[m.Name] {
						t.Errorf("%s: mounts volume %s, which the pod does not have", cctx, m.Name)
					}
					if m.MountPropagation != nil && *m.MountPropagation == corev1.MountPropagationBidirectional &&
						(ct.SecurityContext == nil || ct.SecurityContext.Privileged == nil || !*ct.SecurityContext.Privileged) {
						t.Errorf("%s: Bidirectional mount propagation needs a privileged container", cctx)
					}
				}
				env := map[string]bool{}
				for _, ef := range ct.EnvFrom {
					if ef.ConfigMapRef != nil {
						cm := c.needConfigMap(t, cctx, ef.ConfigMapRef.Name, ef.ConfigMapRef.Optional)
						if cm != nil {
							for k := range cm.Data {
								env[k] = true
							}
						}
					}
					if ef.SecretRef != nil {
						c.needSecret(t, dir, cctx, ef.SecretRef.Name, ef.SecretRef.Optional)
					}
				}
				for _, e := range ct.Env {
					env[e.Name] = true
					if e.ValueFrom == nil {
						continue
					}
					if r := e.ValueFrom.ConfigMapKeyRef; r != nil {
						if cm := c.needConfigMap(t, cctx, r.Name, r.Optional); cm != nil {
							if _, ok := cm.Data[r.Key]; !ok {
								t.Errorf("%s: env %s: ConfigMap %s has no key %s", cctx, e.Name, r.Name, r.Key)
							}
						}
					}
					if r := e.ValueFrom.SecretKeyRef; r != nil {
						c.needSecret(t, dir, cctx, r.Name, r.Optional)
					}
				}
				// $(VAR) in command and args must be defined, or Kubernetes
				// passes it literally.
				for _, a := range append(append([]string{}, ct.Command...), ct.Args...) {
					for _, m := range varRef.FindAllStringSubmatch(a, -1) {
						if !env[m[1]] {
							t.Errorf("%s: $(%s) in %q is not an environment variable of the container", cctx, m[1], a)
						}
					}
				}
				checkImage(t, cctx, ct.Image)
				if name, _, _ := splitImage(ct.Image); name == rwxfsImage || strings.HasSuffix(name, "/rwxfs") {
					rwxfsImages = append(rwxfsImages, ct.Image)
				}
				checkResources(t, cctx, ct)
			}
			for _, ct := range spec.Containers {
				cctx := ctx + " container " + ct.Name
				if ct.LivenessProbe == nil && w.kind != "Job" {
					// A Job's container runs to completion; activeDeadlineSeconds bounds it.
					t.Errorf("%s: no livenessProbe", cctx)
				}
				for _, p := range ct.Ports {
					if serviced[p.Name] || serviced[strconv.Itoa(int(p.ContainerPort))] {
						if ct.ReadinessProbe == nil {
							t.Errorf("%s: serves a Service on port %d but has no readinessProbe", cctx, p.ContainerPort)
						}
					}
				}
				for _, p := range []*corev1.Probe{ct.LivenessProbe, ct.ReadinessProbe, ct.StartupProbe} {
					checkProbe(t, cctx, p, ct)
				}
			}
		}
		if len(rwxfsImages) == 0 {
			t.Errorf("%s: no container runs the rwxfs image", dir)
		}
		for _, img := range rwxfsImages {
			if img != rwxfsImages[0] {
				t.Errorf("%s: rwxfs images differ: %s and %s (all rwxfs containers must run one build)", dir, rwxfsImages[0], img)
				break
			}
		}
	}
}

var varRef = regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`)

func allContainers(spec corev1.PodSpec) []corev1.Container {
	return append(append([]corev1.Container{}, spec.InitContainers...), spec.Containers...)
}

func (c *cluster) needConfigMap(t *testing.T, ctx, name string, optional *bool) *corev1.ConfigMap {
	t.Helper()
	cm := c.configMaps[name]
	if cm == nil && (optional == nil || !*optional) {
		t.Errorf("%s: ConfigMap %s does not exist", ctx, name)
	}
	return cm
}

func (c *cluster) needSecret(t *testing.T, dir, ctx, name string, optional *bool) {
	t.Helper()
	if c.secrets[name] != nil || (optional != nil && *optional) {
		return
	}
	for _, s := range adminSecrets[dir] {
		if s == name {
			return
		}
	}
	t.Errorf("%s: Secret %s neither exists nor is one the administrator creates (adminSecrets)", ctx, name)
}

// checkImage requires a pinned image: a tag other than latest, or a digest.
func checkImage(t *testing.T, ctx, img string) {
	t.Helper()
	name, tag, digest := splitImage(img)
	switch {
	case name == "":
		t.Errorf("%s: no image", ctx)
	case digest == "" && (tag == "" || tag == "latest"):
		t.Errorf("%s: image %q is not pinned (give a version tag or a digest)", ctx, img)
	case !strings.Contains(strings.Split(name, "/")[0], "."):
		t.Errorf("%s: image %q has no registry host (Docker Hub rate limits; name it fully)", ctx, img)
	}
}

// checkResources requires CPU and memory requests and a memory limit no
// smaller than the request. CPU limits are left out on purpose: throttling
// an NFS frontend or etcd stalls every client.
func checkResources(t *testing.T, ctx string, ct corev1.Container) {
	t.Helper()
	r := ct.Resources
	cpu, mem := r.Requests.Cpu(), r.Requests.Memory()
	if cpu.IsZero() || mem.IsZero() {
		t.Errorf("%s: requests cpu=%v memory=%v, want both", ctx, cpu, mem)
	}
	lim := r.Limits.Memory()
	if lim.IsZero() || lim.Cmp(*mem) < 0 {
		t.Errorf("%s: memory limit %v, want one at least the request %v", ctx, lim, mem)
	}
	if !r.Limits.Cpu().IsZero() {
		t.Errorf("%s: a CPU limit throttles the data path; leave it out", ctx)
	}
}

// checkProbe checks that a probe's named port exists in the container.
func checkProbe(t *testing.T, ctx string, p *corev1.Probe, ct corev1.Container) {
	t.Helper()
	if p == nil {
		return
	}
	var port *intstr.IntOrString
	switch {
	case p.HTTPGet != nil:
		port = &p.HTTPGet.Port
		if !strings.HasPrefix(p.HTTPGet.Path, "/") {
			t.Errorf("%s: probe path %q", ctx, p.HTTPGet.Path)
		}
	case p.TCPSocket != nil:
		port = &p.TCPSocket.Port
	case p.Exec != nil:
		if len(p.Exec.Command) == 0 {
			t.Errorf("%s: empty exec probe", ctx)
		}
		if p.TimeoutSeconds < 5 {
			t.Errorf("%s: an exec probe that connects to etcd needs a timeout of some seconds, has %ds", ctx, p.TimeoutSeconds)
		}
	case p.GRPC != nil:
	default:
		t.Errorf("%s: probe without a handler", ctx)
	}
	if port != nil && port.Type == intstr.String {
		found := false
		for _, cp := range ct.Ports {
			found = found || cp.Name == port.StrVal
		}
		if !found {
			t.Errorf("%s: probe port %q is not a port of the container", ctx, port.StrVal)
		}
	}
}

// selects reports whether svc selects w's pods.
func selects(svc *corev1.Service, w *workload) bool {
	if len(svc.Spec.Selector) == 0 {
		return false
	}
	return labels.SelectorFromSet(svc.Spec.Selector).Matches(labels.Set(w.template.Labels))
}

// servicedPorts are the container ports (names and numbers) of w that a
// Service sends traffic to.
func servicedPorts(c *cluster, w *workload) map[string]bool {
	out := map[string]bool{}
	for _, svc := range c.services {
		if !selects(svc, w) || svc.Labels["rwxfs.io/metrics"] == "true" {
			continue
		}
		for _, p := range svc.Spec.Ports {
			out[p.TargetPort.String()] = true
		}
	}
	return out
}

func TestServices(t *testing.T) {
	for dir, c := range decodeAll(t) {
		for _, svc := range c.services {
			ctx := dir + ": Service " + svc.Name
			var matched []*workload
			for _, w := range c.workloads {
				if selects(svc, w) {
					matched = append(matched, w)
				}
			}
			if len(matched) == 0 {
				t.Errorf("%s: selector %v selects no pods", ctx, svc.Spec.Selector)
				continue
			}
			for _, p := range svc.Spec.Ports {
				if errs := validation.IsValidPortName(p.Name); len(errs) > 0 {
					t.Errorf("%s: port name %q: %v", ctx, p.Name, errs)
				}
				for _, w := range matched {
					if !hasContainerPort(w.template.Spec, p.TargetPort, p.Protocol) {
						t.Errorf("%s: port %s targets %s, which %s does not declare", ctx, p.Name, p.TargetPort.String(), w.id)
					}
				}
			}
		}
	}
}

func hasContainerPort(spec corev1.PodSpec, target intstr.IntOrString, proto corev1.Protocol) bool {
	if proto == "" {
		proto = corev1.ProtocolTCP
	}
	for _, ct := range spec.Containers {
		for _, cp := range ct.Ports {
			p := cp.Protocol
			if p == "" {
				p = corev1.ProtocolTCP
			}
			if p != proto {
				continue
			}
			if (target.Type == intstr.String && cp.Name == target.StrVal) || (target.Type == intstr.Int && cp.ContainerPort == target.IntVal) {
				return true
			}
		}
	}
	return false
}

func TestContainerPortNames(t *testing.T) {
	for dir, c := range decodeAll(t) {
		for _, w := range c.workloads {
			names := map[string]string{}
			for _, ct := range w.template.Spec.Containers {
				for _, p := range ct.Ports {
					if p.Name == "" {
						continue
					}
					if errs := validation.IsValidPortName(p.Name); len(errs) > 0 {
						t.Errorf("%s: %s: port name %q: %v", dir, w.id, p.Name, errs)
					}
					if other, dup := names[p.Name]; dup {
						t.Errorf("%s: %s: port name %q in both %s and %s", dir, w.id, p.Name, other, ct.Name)
					}
					names[p.Name] = ct.Name
				}
			}
		}
	}
}

func TestPodDisruptionBudgets(t *testing.T) {
	for dir, c := range decodeAll(t) {
		covered := map[string]bool{}
		for _, pdb := range c.pdbs {
			sel, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector)
			if err != nil || sel.Empty() {
				t.Errorf("%s: PDB %s: selector %v: %v", dir, pdb.Name, pdb.Spec.Selector, err)
				continue
			}
			n := 0
			for _, w := range c.workloads {
				if sel.Matches(labels.Set(w.template.Labels)) {
					covered[w.meta.Name] = true
					n++
				}
			}
			if n != 1 {
				t.Errorf("%s: PDB %s selects the pods of %d workloads, want 1", dir, pdb.Name, n)
			}
			if pdb.Spec.MaxUnavailable == nil || pdb.Spec.MaxUnavailable.IntValue() < 1 {
				// minAvailable = replicas blocks every drain, and a fixed
				// minAvailable breaks the one-replica dev overlay.
				t.Errorf("%s: PDB %s: want maxUnavailable >= 1", dir, pdb.Name)
			}
		}
		for _, name := range []string{"rwxfs-etcd", "rwxfs-chunk", "rwxfs-csi-controller"} {
			if !covered[name] && (dir != "overlays/external-etcd" || name != "rwxfs-etcd") {
				t.Errorf("%s: %s has no PodDisruptionBudget", dir, name)
			}
		}
	}
}

func TestRBAC(t *testing.T) {
	for dir, c := range decodeAll(t) {
		// Every binding names a role and ServiceAccounts that exist.
		grants := map[string][]rbacRule{} // ServiceAccount -> rules
		bind := func(kind, name, roleKind, roleName string, subjects []subject) {
			var rules []rbacRule
			switch roleKind {
			case "ClusterRole":
				if r := c.clusterRoles[roleName]; r != nil {
					rules = toRules(r.Rules)
				} else {
					t.Errorf("%s: %s %s binds missing ClusterRole %s", dir, kind, name, roleName)
				}
			case "Role":
				if r := c.roles[roleName]; r != nil {
					rules = toRules(r.Rules)
				} else {
					t.Errorf("%s: %s %s binds missing Role %s", dir, kind, name, roleName)
				}
			}
			for _, s := range subjects {
				if s.kind != "ServiceAccount" || s.namespace != namespace || c.serviceAccounts[s.name] == nil {
					t.Errorf("%s: %s %s: subject %+v is not a ServiceAccount of %s", dir, kind, name, s, namespace)
					continue
				}
				grants[s.name] = append(grants[s.name], rules...)
			}
		}
		for _, b := range c.clusterRoleBindings {
			bind("ClusterRoleBinding", b.Name, b.RoleRef.Kind, b.RoleRef.Name, subjects(b.Subjects))
		}
		for _, b := range c.roleBindings {
			bind("RoleBinding", b.Name, b.RoleRef.Kind, b.RoleRef.Name, subjects(b.Subjects))
		}
		// What the CSI sidecars do (their documented RBAC, minus attach).
		controllerSA := ""
		for _, w := range c.workloads {
			if w.meta.Name == "rwxfs-csi-controller" {
				controllerSA = w.template.Spec.ServiceAccountName
			}
		}
		for _, need := range []string{
			"/persistentvolumes:create", "/persistentvolumes:delete", "/persistentvolumes:patch", "/persistentvolumes:watch",
			"/persistentvolumeclaims:watch", "/persistentvolumeclaims:update", "/persistentvolumeclaims/status:patch",
			"/events:create", "/events:patch",
			"storage.k8s.io/storageclasses:watch",
			"snapshot.storage.k8s.io/volumesnapshots:get",
			"snapshot.storage.k8s.io/volumesnapshotclasses:watch",
			"snapshot.storage.k8s.io/volumesnapshotcontents:update", "snapshot.storage.k8s.io/volumesnapshotcontents:watch",
			"snapshot.storage.k8s.io/volumesnapshotcontents/status:update",
			"coordination.k8s.io/leases:create", "coordination.k8s.io/leases:update", "coordination.k8s.io/leases:get",
		} {
			if !allowed(grants[controllerSA], need) {
				t.Errorf("%s: the CSI controller's ServiceAccount %q may not %s", dir, controllerSA, need)
			}
		}
		// Nothing else may talk to the API server.
		for _, w := range c.workloads {
			sa := c.serviceAccounts[w.template.Spec.ServiceAccountName]
			if sa == nil || w.template.Spec.ServiceAccountName == controllerSA {
				continue
			}
			mount := sa.AutomountServiceAccountToken == nil || *sa.AutomountServiceAccountToken
			if w.template.Spec.AutomountServiceAccountToken != nil {
				mount = *w.template.Spec.AutomountServiceAccountToken
			}
			if mount || len(grants[sa.Name]) > 0 {
				t.Errorf("%s: %s gets an API token or rights it does not need", dir, w.id)
			}
		}
	}
}

type rbacRule struct{ groups, resources, verbs []string }

func toRules(rs []rbacv1.PolicyRule) []rbacRule {
	var out []rbacRule
	for _, r := range rs {
		out = append(out, rbacRule{r.APIGroups, r.Resources, r.Verbs})
	}
	return out
}

// allowed reports whether rules grant "group/resource:verb".
func allowed(rules []rbacRule, need string) bool {
	gr, verb, _ := strings.Cut(need, ":")
	group, res, _ := strings.Cut(gr, "/")
	has := func(l []string, s string) bool {
		for _, e := range l {
			if e == s || e == "*" {
				return true
			}
		}
		return false
	}
	for _, r := range rules {
		if has(r.groups, group) && has(r.resources, res) && has(r.verbs, verb) {
			return true
		}
	}
	return false
}

type subject struct{ kind, name, namespace string }

func subjects(ss []rbacv1.Subject) []subject {
	var out []subject
	for _, s := range ss {
		out = append(out, subject{s.Kind, s.Name, s.Namespace})
	}
	return out
}

func TestCSIDriverName(t *testing.T) {
	// Any string in the manifests that looks like an rwxfs CSI driver name
	// must be csi.DriverName; then the specific places.
	driverLike := regexp.MustCompile(`[a-z0-9.-]*\.?rwxfs\.io\b`)
	for dir, c := range decodeAll(t) {
		var walk func(path string, v any)
		walk = func(path string, v any) {
			switch x := v.(type) {
			case object:
				for k, e := range x {
					walk(path+"."+k, e)
				}
			case []any:
				for i, e := range x {
					walk(path+"["+strconv.Itoa(i)+"]", e)
				}
			case string:
				for _, loc := range driverLike.FindAllStringIndex(x, -1) {
					m := x[loc[0]:loc[1]]
					if loc[1] < len(x) && x[loc[1]] == '/' && strings.HasSuffix(path, "labels") {
						continue // a label key prefix such as rwxfs.io/metrics
					}
					if m != csi.DriverName {
						t.Errorf("%s: %s: %q is not the driver name %q", dir, path, m, csi.DriverName)
					}
				}
			}
		}
		for _, o := range c.objs {
			// Label keys are map keys and values never hold the driver name.
			walk(objectID(o), o)
		}
		if len(c.csiDrivers) != 1 {
			t.Fatalf("%s: %d CSIDriver objects", dir, len(c.csiDrivers))
		}
		d := c.csiDrivers[0]
		if d.Name != csi.DriverName {
			t.Errorf("%s: CSIDriver %s, want %s", dir, d.Name, csi.DriverName)
		}
		s := d.Spec
		if s.AttachRequired == nil || *s.AttachRequired || s.PodInfoOnMount == nil || *s.PodInfoOnMount ||
			s.FSGroupPolicy == nil || len(s.VolumeLifecycleModes) != 1 || s.VolumeLifecycleModes[0] != "Persistent" {
			t.Errorf("%s: CSIDriver spec %+v: want attachRequired false, podInfoOnMount false, an fsGroupPolicy, lifecycle Persistent", dir, s)
		}
		for _, sc := range c.storageClasses {
			if sc.Provisioner != csi.DriverName {
				t.Errorf("%s: StorageClass %s provisioner %s", dir, sc.Name, sc.Provisioner)
			}
		}
		for _, vsc := range c.snapshotClasses {
			if vsc.Driver != csi.DriverName {
				t.Errorf("%s: VolumeSnapshotClass %s driver %s", dir, vsc.Name, vsc.Driver)
			}
		}
		// The node plugin's socket: where the kubelet finds it and where the
		// plugin and the sidecars put it.
		var node *workload
		for _, w := range c.workloads {
			if w.meta.Name == "rwxfs-csi-node" {
				node = w
			}
		}
		if node == nil {
			t.Fatalf("%s: no rwxfs-csi-node", dir)
		}
		hostDirs := map[string]string{}
		for _, v := range node.template.Spec.Volumes {
			if v.HostPath != nil {
				hostDirs[v.Name] = v.HostPath.Path
			}
		}
		registration := ""
		for _, ct := range node.template.Spec.Containers {
			for _, a := range ct.Args {
				if v, ok := strings.CutPrefix(a, "--kubelet-registration-path="); ok {
					registration = v
				}
			}
			sock := ""
			for _, a := range ct.Args {
				if v, ok := strings.CutPrefix(a, "--csi-address="); ok {
					sock = v
				}
				if v, ok := strings.CutPrefix(a, "--endpoint=unix://"); ok {
					sock = v
				}
			}
			if sock == "" {
				t.Errorf("%s: node container %s has no CSI socket argument", dir, ct.Name)
				continue
			}
			host := ""
			for _, m := range ct.VolumeMounts {
				if strings.HasPrefix(sock, m.MountPath+"/") {
					host = hostDirs[m.Name] + strings.TrimPrefix(sock, m.MountPath)
				}
			}
			if host != "/var/lib/kubelet/plugins/"+csi.DriverName+"/csi.sock" {
				t.Errorf("%s: node container %s uses socket %s, on the host %q", dir, ct.Name, sock, host)
			}
		}
		if registration != "/var/lib/kubelet/plugins/"+csi.DriverName+"/csi.sock" {
			t.Errorf("%s: --kubelet-registration-path=%s", dir, registration)
		}
		if hostDirs["registration-dir"] != "/var/lib/kubelet/plugins_registry" {
			t.Errorf("%s: registration dir %q", dir, hostDirs["registration-dir"])
		}
	}
}

func TestStorageClasses(t *testing.T) {
	for dir, c := range decodeAll(t) {
		names := map[string]bool{}
		for _, sc := range c.storageClasses {
			names[sc.Name] = true
			ctx := dir + ": StorageClass " + sc.Name
			for k, v := range sc.Parameters {
				switch k {
				case "onDelete":
					if v != "delete" && v != "retain" && v != "archive" && v != "trash" {
						t.Errorf("%s: onDelete %q", ctx, v)
					}
				case "trashRetention":
					if d, err := time.ParseDuration(v); err != nil || d <= 0 || sc.Parameters["onDelete"] != "trash" {
						t.Errorf("%s: trashRetention %q (needs onDelete trash and a duration): %v", ctx, v, err)
					}
				case "replicas":
					if n, err := strconv.Atoi(v); err != nil || n < 1 {
						t.Errorf("%s: replicas %q", ctx, v)
					}
				case "mountMode":
					if v != "nfs" && v != "fuse" {
						t.Errorf("%s: mountMode %q", ctx, v)
					}
				default:
					// The driver refuses unknown parameters (issue 7).
					t.Errorf("%s: unknown parameter %s", ctx, k)
				}
			}
			if sc.AllowVolumeExpansion == nil || !*sc.AllowVolumeExpansion {
				t.Errorf("%s: expansion (quota increase) not allowed", ctx)
			}
			if sc.Parameters["onDelete"] == "retain" && (sc.ReclaimPolicy == nil || *sc.ReclaimPolicy != corev1.PersistentVolumeReclaimRetain) {
				t.Errorf("%s: onDelete retain with reclaimPolicy %v", ctx, sc.ReclaimPolicy)
			}
			// rwxfs's own claims take the cluster's default class: an rwxfs
			// default would make them wait for rwxfs.
			if sc.Annotations["storageclass.kubernetes.io/is-default-class"] == "true" {
				for _, w := range c.workloads {
					for _, pvc := range w.claims {
						if pvc.Spec.StorageClassName == nil {
							t.Errorf("%s: is the default class, so %s's claim %s would be served by rwxfs itself", ctx, w.id, pvc.Name)
						}
					}
				}
			}
		}
		if !names["rwxfs"] || !names["rwxfs-retain"] {
			t.Errorf("%s: classes %v, want rwxfs and rwxfs-retain", dir, names)
		}
		for _, sc := range c.storageClasses {
			if sc.Name == "rwxfs" && (sc.Parameters["onDelete"] != "trash" || sc.Parameters["trashRetention"] == "") {
				t.Errorf("%s: the rwxfs class should move deleted volumes to the trash, with a retention", dir)
			}
		}
		if len(c.snapshotClasses) != 1 || (c.snapshotClasses[0].DeletionPolicy != "Delete" && c.snapshotClasses[0].DeletionPolicy != "Retain") {
			t.Errorf("%s: want one VolumeSnapshotClass with deletionPolicy Delete or Retain", dir)
		}
	}
}

func TestServiceMonitor(t *testing.T) {
	for dir, c := range decodeAll(t) {
		metricsSvcs := 0
		for _, svc := range c.services {
			if svc.Labels["rwxfs.io/metrics"] != "true" {
				continue
			}
			metricsSvcs++
			if len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].Name != "metrics" {
				t.Errorf("%s: metrics Service %s: want exactly one port, named metrics", dir, svc.Name)
			}
		}
		if dir == "overlays/dev" {
			if len(c.serviceMonitors) != 0 {
				t.Errorf("%s: the dev overlay has no Prometheus Operator to serve", dir)
			}
			continue
		}
		if len(c.serviceMonitors) != 1 {
			t.Fatalf("%s: %d ServiceMonitors", dir, len(c.serviceMonitors))
		}
		sm := c.serviceMonitors[0]
		sel, err := metav1.LabelSelectorAsSelector(&sm.Spec.Selector)
		if err != nil || sel.Empty() {
			t.Fatalf("%s: ServiceMonitor selector: %v", dir, err)
		}
		if len(sm.Spec.NamespaceSelector.MatchNames) != 1 || sm.Spec.NamespaceSelector.MatchNames[0] != namespace {
			t.Errorf("%s: ServiceMonitor namespaceSelector %+v", dir, sm.Spec.NamespaceSelector)
		}
		selected := 0
		for _, svc := range c.services {
			if !sel.Matches(labels.Set(svc.Labels)) {
				continue
			}
			selected++
			for _, ep := range sm.Spec.Endpoints {
				found := false
				for _, p := range svc.Spec.Ports {
					found = found || p.Name == ep.Port
				}
				if !found {
					t.Errorf("%s: ServiceMonitor endpoint port %q is not a port of Service %s", dir, ep.Port, svc.Name)
				}
			}
		}
		want := 3 // etcd, chunk, nfs
		if dir == "overlays/external-etcd" {
			want = 2
		}
		if selected != want || metricsSvcs != want {
			t.Errorf("%s: ServiceMonitor selects %d Services (%d labelled), want %d", dir, selected, metricsSvcs, want)
		}
	}
}

// TestKustomizationFiles: every resource and patch exists, and every YAML
// file of a kustomization folder is used, so nothing an administrator
// sees in deploy/ is silently left out.
func TestKustomizationFiles(t *testing.T) {
	for _, dir := range kustomizations {
		k, err := readKustomization(dir)
		if err != nil {
			t.Fatal(err)
		}
		used := map[string]bool{"kustomization.yaml": true}
		for _, r := range k.Resources {
			used[filepath.Clean(r)] = true
		}
		for _, p := range k.Patches {
			used[filepath.Clean(p.Path)] = true
		}
		for f := range used {
			if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
				t.Errorf("%s: %s: %v", dir, f, err)
			}
		}
		files, _ := filepath.Glob(filepath.Join(dir, "*.y*ml"))
		for _, f := range files {
			if !used[filepath.Base(f)] {
				t.Errorf("%s: %s is not listed in kustomization.yaml", dir, filepath.Base(f))
			}
		}
	}
	// Every kustomization folder is one the tests render.
	var found []string
	_ = filepath.WalkDir(".", func(p string, d os.DirEntry, err error) error {
		if err == nil && d.Name() == "kustomization.yaml" {
			found = append(found, filepath.Dir(p))
		}
		return nil
	})
	sort.Strings(found)
	want := append([]string{}, kustomizations...)
	sort.Strings(want)
	if strings.Join(found, " ") != strings.Join(want, " ") {
		t.Errorf("kustomizations on disk %v, tested %v", found, want)
	}
}

func TestDockerfile(t *testing.T) {
	b, err := os.ReadFile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	df := string(b)
	froms := regexp.MustCompile(`(?m)^FROM\s+(?:--platform=\S+\s+)?(\S+)`).FindAllStringSubmatch(df, -1)
	if len(froms) < 2 {
		t.Fatalf("want a multi-stage build, found %d FROM lines", len(froms))
	}
	args := map[string]string{}
	for _, m := range regexp.MustCompile(`(?m)^ARG\s+(\w+)=(\S+)`).FindAllStringSubmatch(df, -1) {
		args[m[1]] = m[2]
	}
	for _, m := range froms {
		img := regexp.MustCompile(`\$\{(\w+)\}`).ReplaceAllStringFunc(m[1], func(s string) string { return args[s[2:len(s)-1]] })
		if _, tag, digest := splitImage(img); digest == "" && (tag == "" || tag == "latest") && !regexp.MustCompile(`^\w+$`).MatchString(img) {
			t.Errorf("base image %q is not pinned", m[1])
		}
	}
	if !strings.HasPrefix(args["GO_VERSION"], "1.26") {
		t.Errorf("GO_VERSION %q: go.mod needs Go 1.26", args["GO_VERSION"])
	}
	for _, want := range []string{"CGO_ENABLED=0", "-trimpath", "-X main.version=", "./cmd/rwxfs", `ENTRYPOINT ["/usr/local/bin/rwxfs"]`, "nfs-common", "fuse3", "USER 65532"} {
		if !strings.Contains(df, want) {
			t.Errorf("Dockerfile lacks %q", want)
		}
	}
	if _, err := os.Stat("Dockerfile.dockerignore"); err != nil {
		t.Errorf("no Dockerfile.dockerignore (the build context is the repository): %v", err)
	}
}

func TestInstallGuide(t *testing.T) {
	b, err := os.ReadFile("../docs/install.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	for _, dir := range kustomizations {
		if !strings.Contains(doc, "kubectl apply -k deploy/"+dir) {
			t.Errorf("docs/install.md never applies deploy/%s", dir)
		}
	}
	for _, secrets := range adminSecrets {
		for _, s := range secrets {
			if !strings.Contains(doc, "create secret generic "+s) {
				t.Errorf("docs/install.md does not say how to create Secret %s", s)
			}
		}
	}
	for _, want := range []string{"rwxfs mount", "docker build", "port-forward", "VolumeSnapshot", "ReadWriteMany", csi.DriverName} {
		if !strings.Contains(doc, want) {
			t.Errorf("docs/install.md never mentions %q", want)
		}
	}
}
