package deploy

import (
	"encoding/json"
	"fmt"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kjson "sigs.k8s.io/json"
)

// volumeSnapshotClass is snapshot.storage.k8s.io/v1 VolumeSnapshotClass
// (external-snapshotter's CRD, not part of k8s.io/api), field for field.
type volumeSnapshotClass struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Driver            string            `json:"driver"`
	DeletionPolicy    string            `json:"deletionPolicy"`
	Parameters        map[string]string `json:"parameters,omitempty"`
}

// serviceMonitor is monitoring.coreos.com/v1 ServiceMonitor (the
// Prometheus Operator's CRD), restricted to the fields rwxfs may use: any
// other field is rejected like an unknown one.
type serviceMonitor struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		JobLabel          string `json:"jobLabel,omitempty"`
		NamespaceSelector struct {
			Any        bool     `json:"any,omitempty"`
			MatchNames []string `json:"matchNames,omitempty"`
		} `json:"namespaceSelector"`
		Selector  metav1.LabelSelector `json:"selector"`
		Endpoints []struct {
			Port          string `json:"port"`
			Path          string `json:"path,omitempty"`
			Interval      string `json:"interval,omitempty"`
			ScrapeTimeout string `json:"scrapeTimeout,omitempty"`
			Scheme        string `json:"scheme,omitempty"`
		} `json:"endpoints"`
	} `json:"spec"`
}

// workload is a pod-creating object with what the checks need of it.
type workload struct {
	id          string
	kind        string
	meta        metav1.ObjectMeta
	selector    *metav1.LabelSelector
	template    corev1.PodTemplateSpec
	replicas    *int32
	serviceName string                         // StatefulSet
	claims      []corev1.PersistentVolumeClaim // StatefulSet volumeClaimTemplates
}

// cluster is one rendered kustomization, decoded.
type cluster struct {
	objs                []object
	namespaces          map[string]*corev1.Namespace
	serviceAccounts     map[string]*corev1.ServiceAccount
	configMaps          map[string]*corev1.ConfigMap
	secrets             map[string]*corev1.Secret
	services            map[string]*corev1.Service
	workloads           []*workload
	pdbs                []*policyv1.PodDisruptionBudget
	roles               map[string]*rbacv1.Role
	clusterRoles        map[string]*rbacv1.ClusterRole
	roleBindings        []*rbacv1.RoleBinding
	clusterRoleBindings []*rbacv1.ClusterRoleBinding
	storageClasses      []*storagev1.StorageClass
	csiDrivers          []*storagev1.CSIDriver
	snapshotClasses     []*volumeSnapshotClass
	serviceMonitors     []*serviceMonitor
}

// strictDecode decodes o into out, rejecting unknown and duplicate fields
// (and fields whose case differs from the Go struct's JSON tags).
func strictDecode(o object, out any) error {
	b, err := json.Marshal(o)
	if err != nil {
		return err
	}
	strict, err := kjson.UnmarshalStrict(b, out, kjson.DisallowUnknownFields, kjson.DisallowDuplicateFields)
	if err != nil {
		return err
	}
	if len(strict) > 0 {
		return fmt.Errorf("%v", strict)
	}
	return nil
}

// decodeCluster decodes every object of a rendered kustomization into its
// typed struct; an unknown apiVersion/kind is an error.
func decodeCluster(objs []object) (*cluster, error) {
	c := &cluster{
		objs:            objs,
		namespaces:      map[string]*corev1.Namespace{},
		serviceAccounts: map[string]*corev1.ServiceAccount{},
		configMaps:      map[string]*corev1.ConfigMap{},
		secrets:         map[string]*corev1.Secret{},
		services:        map[string]*corev1.Service{},
		roles:           map[string]*rbacv1.Role{},
		clusterRoles:    map[string]*rbacv1.ClusterRole{},
	}
	for _, o := range objs {
		id := objectID(o)
		gvk := str(o, "apiVersion") + " " + str(o, "kind")
		var err error
		switch gvk {
		case "v1 Namespace":
			var x corev1.Namespace
			err = strictDecode(o, &x)
			c.namespaces[x.Name] = &x
		case "v1 ServiceAccount":
			var x corev1.ServiceAccount
			err = strictDecode(o, &x)
			c.serviceAccounts[x.Name] = &x
		case "v1 ConfigMap":
			var x corev1.ConfigMap
			err = strictDecode(o, &x)
			c.configMaps[x.Name] = &x
		case "v1 Secret":
			var x corev1.Secret
			err = strictDecode(o, &x)
			c.secrets[x.Name] = &x
		case "v1 Service":
			var x corev1.Service
			err = strictDecode(o, &x)
			c.services[x.Name] = &x
		case "apps/v1 Deployment":
			var x appsv1.Deployment
			err = strictDecode(o, &x)
			c.workloads = append(c.workloads, &workload{id: id, kind: x.Kind, meta: x.ObjectMeta, selector: x.Spec.Selector, template: x.Spec.Template, replicas: x.Spec.Replicas})
		case "apps/v1 StatefulSet":
			var x appsv1.StatefulSet
			err = strictDecode(o, &x)
			c.workloads = append(c.workloads, &workload{id: id, kind: x.Kind, meta: x.ObjectMeta, selector: x.Spec.Selector, template: x.Spec.Template,
				replicas: x.Spec.Replicas, serviceName: x.Spec.ServiceName, claims: x.Spec.VolumeClaimTemplates})
		case "apps/v1 DaemonSet":
			var x appsv1.DaemonSet
			err = strictDecode(o, &x)
			c.workloads = append(c.workloads, &workload{id: id, kind: x.Kind, meta: x.ObjectMeta, selector: x.Spec.Selector, template: x.Spec.Template})
		case "batch/v1 Job":
			var x batchv1.Job
			err = strictDecode(o, &x)
			c.workloads = append(c.workloads, &workload{id: id, kind: x.Kind, meta: x.ObjectMeta, selector: x.Spec.Selector, template: x.Spec.Template})
		case "policy/v1 PodDisruptionBudget":
			var x policyv1.PodDisruptionBudget
			err = strictDecode(o, &x)
			c.pdbs = append(c.pdbs, &x)
		case "rbac.authorization.k8s.io/v1 Role":
			var x rbacv1.Role
			err = strictDecode(o, &x)
			c.roles[x.Name] = &x
		case "rbac.authorization.k8s.io/v1 ClusterRole":
			var x rbacv1.ClusterRole
			err = strictDecode(o, &x)
			c.clusterRoles[x.Name] = &x
		case "rbac.authorization.k8s.io/v1 RoleBinding":
			var x rbacv1.RoleBinding
			err = strictDecode(o, &x)
			c.roleBindings = append(c.roleBindings, &x)
		case "rbac.authorization.k8s.io/v1 ClusterRoleBinding":
			var x rbacv1.ClusterRoleBinding
			err = strictDecode(o, &x)
			c.clusterRoleBindings = append(c.clusterRoleBindings, &x)
		case "storage.k8s.io/v1 StorageClass":
			var x storagev1.StorageClass
			err = strictDecode(o, &x)
			c.storageClasses = append(c.storageClasses, &x)
		case "storage.k8s.io/v1 CSIDriver":
			var x storagev1.CSIDriver
			err = strictDecode(o, &x)
			c.csiDrivers = append(c.csiDrivers, &x)
		case "snapshot.storage.k8s.io/v1 VolumeSnapshotClass":
			var x volumeSnapshotClass
			err = strictDecode(o, &x)
			c.snapshotClasses = append(c.snapshotClasses, &x)
		case "monitoring.coreos.com/v1 ServiceMonitor":
			var x serviceMonitor
			err = strictDecode(o, &x)
			c.serviceMonitors = append(c.serviceMonitors, &x)
		default:
			err = fmt.Errorf("unknown apiVersion/kind %q: add it to decodeCluster with its typed struct", gvk)
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", id, err)
		}
	}
	return c, nil
}

// decodeAll renders and decodes every kustomization.
func decodeAll(t *testing.T) map[string]*cluster {
	t.Helper()
	out := map[string]*cluster{}
	for dir, objs := range renderAll(t) {
		c, err := decodeCluster(objs)
		if err != nil {
			t.Fatalf("%s: %v", dir, err)
		}
		out[dir] = c
	}
	return out
}

func TestStrictDecodeRejects(t *testing.T) {
	// The decoder must refuse what the API server would silently drop or
	// reject, or the manifest checks prove nothing.
	for name, o := range map[string]object{
		"unknown field":      {"apiVersion": "v1", "kind": "ConfigMap", "metadata": object{"name": "x"}, "dat": object{}},
		"misspelt case":      {"apiVersion": "v1", "kind": "ConfigMap", "metadata": object{"Name": "x"}},
		"nested unknown":     {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": object{"name": "x"}, "spec": object{"template": object{"spec": object{"containers": []any{object{"name": "a", "imagePullPolicey": "Always"}}}}}},
		"unknown CRD field":  {"apiVersion": "monitoring.coreos.com/v1", "kind": "ServiceMonitor", "metadata": object{"name": "x"}, "spec": object{"endpoint": []any{}}},
		"unknown kind":       {"apiVersion": "v1", "kind": "PodTemplate", "metadata": object{"name": "x"}},
		"wrong type":         {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": object{"name": "x"}, "spec": object{"replicas": "3"}},
		"unknown VSC field":  {"apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshotClass", "metadata": object{"name": "x"}, "driver": "d", "deletionPolicy": "Delete", "drivr": "d"},
		"bad quantity":       {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": object{"name": "x"}, "spec": object{"template": object{"spec": object{"containers": []any{object{"name": "a", "resources": object{"requests": object{"memory": "1 GB"}}}}}}}},
		"unknown probe kind": {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": object{"name": "x"}, "spec": object{"template": object{"spec": object{"containers": []any{object{"name": "a", "livenessProbe": object{"http": object{}}}}}}}},
	} {
		if _, err := decodeCluster([]object{o}); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := decodeCluster([]object{{"apiVersion": "v1", "kind": "ConfigMap", "metadata": object{"name": "x"}, "data": object{"a": "b"}}}); err != nil {
		t.Errorf("a valid ConfigMap was refused: %v", err)
	}
}

func TestManifestsDecode(t *testing.T) {
	for dir, c := range decodeAll(t) {
		if len(c.workloads) == 0 || len(c.objs) < 10 {
			t.Errorf("%s: only %d objects, %d workloads", dir, len(c.objs), len(c.workloads))
		}
		t.Logf("%s: %d objects decoded strictly", dir, len(c.objs))
	}
}
