package deploy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// This file renders a kustomization the way "kustomize build" does, for
// the subset of kustomize the manifests use: resources (files and
// folders), patches (strategic merge, by the patch's own id or by a
// target with kind, name and labelSelector, including "$patch: delete" of
// a whole object and null to remove a key), replicas and images. A
// kustomization using anything else fails to decode (unknown field), so
// the manifests cannot silently outgrow the renderer; TestKubectlKustomize
// compares the result with kubectl's own kustomize where it is installed.

// object is one rendered Kubernetes object in its JSON form.
type object = map[string]any

type kustomization struct {
	APIVersion string        `json:"apiVersion"`
	Kind       string        `json:"kind"`
	Resources  []string      `json:"resources"`
	Patches    []patchRef    `json:"patches"`
	Replicas   []replicaRef  `json:"replicas"`
	Images     []imageChange `json:"images"`
}

type patchRef struct {
	Path   string       `json:"path"`
	Target *patchTarget `json:"target"`
}

type patchTarget struct {
	Kind          string `json:"kind"`
	Name          string `json:"name"`
	LabelSelector string `json:"labelSelector"`
}

type replicaRef struct {
	Name  string `json:"name"`
	Count int64  `json:"count"`
}

type imageChange struct {
	Name    string `json:"name"`
	NewName string `json:"newName"`
	NewTag  string `json:"newTag"`
	Digest  string `json:"digest"`
}

// readKustomization strictly decodes dir/kustomization.yaml.
func readKustomization(dir string) (*kustomization, error) {
	b, err := os.ReadFile(filepath.Join(dir, "kustomization.yaml"))
	if err != nil {
		return nil, err
	}
	j, err := yaml.YAMLToJSONStrict(b)
	if err != nil {
		return nil, fmt.Errorf("%s/kustomization.yaml: %w", dir, err)
	}
	var k kustomization
	if strict, err := kjson.UnmarshalStrict(j, &k, kjson.DisallowDuplicateFields, kjson.DisallowUnknownFields); err != nil || len(strict) > 0 {
		return nil, fmt.Errorf("%s/kustomization.yaml: %v %v (a kustomize feature the test renderer does not implement?)", dir, err, strict)
	}
	if k.APIVersion != "kustomize.config.k8s.io/v1beta1" || k.Kind != "Kustomization" {
		return nil, fmt.Errorf("%s/kustomization.yaml: apiVersion/kind %s/%s", dir, k.APIVersion, k.Kind)
	}
	return &k, nil
}

// readObjects decodes the YAML documents of one file (duplicate keys are
// errors), skipping empty documents.
func readObjects(path string) ([]object, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []object
	for i, doc := range splitDocuments(b) {
		j, err := yaml.YAMLToJSONStrict(doc)
		if err != nil {
			return nil, fmt.Errorf("%s, document %d: %w", path, i+1, err)
		}
		if bytes.Equal(bytes.TrimSpace(j), []byte("null")) {
			continue
		}
		var o object
		if err := json.Unmarshal(j, &o); err != nil {
			return nil, fmt.Errorf("%s, document %d: %w", path, i+1, err)
		}
		out = append(out, o)
	}
	return out, nil
}

func splitDocuments(b []byte) [][]byte {
	var docs [][]byte
	var cur []byte
	for _, line := range bytes.SplitAfter(b, []byte("\n")) {
		if string(bytes.TrimRight(line, "\r\n")) == "---" {
			docs = append(docs, cur)
			cur = nil
			continue
		}
		cur = append(cur, line...)
	}
	return append(docs, cur)
}

// render builds the kustomization in dir.
func render(dir string) ([]object, error) {
	k, err := readKustomization(dir)
	if err != nil {
		return nil, err
	}
	var objs []object
	for _, r := range k.Resources {
		p := filepath.Join(dir, r)
		st, err := os.Stat(p)
		if err != nil {
			return nil, fmt.Errorf("%s: resource %s: %w", dir, r, err)
		}
		var more []object
		if st.IsDir() {
			more, err = render(p)
		} else {
			more, err = readObjects(p)
		}
		if err != nil {
			return nil, err
		}
		objs = append(objs, more...)
	}
	seen := map[string]bool{}
	for _, o := range objs {
		id := objectID(o)
		if seen[id] {
			return nil, fmt.Errorf("%s: %s defined twice", dir, id)
		}
		seen[id] = true
	}
	for _, p := range k.Patches {
		if objs, err = applyPatchFile(objs, dir, p); err != nil {
			return nil, err
		}
	}
	for _, r := range k.Replicas {
		n := 0
		for _, o := range objs {
			switch str(o, "kind") {
			case "Deployment", "StatefulSet", "ReplicaSet":
				if str(o, "metadata", "name") == r.Name {
					o["spec"].(object)["replicas"] = float64(r.Count)
					n++
				}
			}
		}
		if n == 0 {
			return nil, fmt.Errorf("%s: replicas: no workload named %s", dir, r.Name)
		}
	}
	for _, im := range k.Images {
		if n := setImages(objs, im); n == 0 {
			return nil, fmt.Errorf("%s: images: no container runs %s", dir, im.Name)
		}
	}
	return objs, nil
}

func applyPatchFile(objs []object, dir string, ref patchRef) ([]object, error) {
	patches, err := readObjects(filepath.Join(dir, ref.Path))
	if err != nil {
		return nil, err
	}
	if len(patches) != 1 {
		return nil, fmt.Errorf("%s/%s: a patch file holds exactly one patch (kustomize's handling of several differs by version)", dir, ref.Path)
	}
	patch := patches[0]
	match := func(o object) bool { return sameID(o, patch) }
	if ref.Target != nil {
		tg := *ref.Target
		match = func(o object) bool {
			return (tg.Kind == "" || str(o, "kind") == tg.Kind) &&
				(tg.Name == "" || str(o, "metadata", "name") == tg.Name) &&
				labelsMatch(o, tg.LabelSelector)
		}
	}
	if d, _ := patch["$patch"].(string); d == "delete" {
		if ref.Target != nil {
			return nil, fmt.Errorf("%s/%s: $patch: delete with a target is not used here", dir, ref.Path)
		}
		var kept []object
		for _, o := range objs {
			if !match(o) {
				kept = append(kept, o)
			}
		}
		if len(kept) == len(objs) {
			return nil, fmt.Errorf("%s/%s: deletes %s, which does not exist", dir, ref.Path, objectID(patch))
		}
		return kept, nil
	}
	n := 0
	for i, o := range objs {
		if !match(o) {
			continue
		}
		body := deepCopy(patch).(object)
		if ref.Target != nil {
			// The target chooses; the patch's own kind and name are placeholders.
			for _, k := range []string{"apiVersion", "kind", "metadata"} {
				delete(body, k)
			}
		}
		merged, err := strategicMerge(o, body, "")
		if err != nil {
			return nil, fmt.Errorf("%s/%s on %s: %w", dir, ref.Path, objectID(o), err)
		}
		objs[i] = merged.(object)
		n++
	}
	if n == 0 {
		return nil, fmt.Errorf("%s/%s: matches no object", dir, ref.Path)
	}
	return objs, nil
}

// mergeKeys are the strategic-merge keys of the lists the manifests patch
// (from the patchMergeKey tags of k8s.io/api); every other list is replaced.
var mergeKeys = map[string]string{
	"containers":                "name",
	"initContainers":            "name",
	"volumes":                   "name",
	"env":                       "name",
	"volumeMounts":              "mountPath",
	"imagePullSecrets":          "name",
	"topologySpreadConstraints": "topologyKey",
}

// strategicMerge merges patch into orig (both JSON values); field is the
// name of the field holding them, which picks a list's merge key.
func strategicMerge(orig, patch any, field string) (any, error) {
	switch p := patch.(type) {
	case object:
		o, ok := orig.(object)
		if !ok {
			return deepCopy(p), nil
		}
		out := deepCopy(o).(object)
		for k, v := range p {
			if strings.HasPrefix(k, "$") {
				return nil, fmt.Errorf("directive %s is not supported by the test renderer", k)
			}
			if v == nil {
				delete(out, k)
				continue
			}
			m, err := strategicMerge(out[k], v, k)
			if err != nil {
				return nil, err
			}
			out[k] = m
		}
		return out, nil
	case []any:
		key, ok := mergeKeys[field]
		if field == "ports" {
			key, ok = "containerPort", true
		}
		o, isList := orig.([]any)
		if !ok || !isList {
			return deepCopy(p), nil
		}
		// Like kustomize (kyaml), elements new to the list go first, in the
		// patch's order, followed by the original ones, merged in place.
		out := deepCopy(o).([]any)
		var added []any
		for _, pe := range p {
			pm, ok := pe.(object)
			if !ok || pm[key] == nil {
				return nil, fmt.Errorf("%s: element without merge key %s", field, key)
			}
			found := false
			for i, oe := range out {
				if om, ok := oe.(object); ok && reflect.DeepEqual(om[key], pm[key]) {
					m, err := strategicMerge(om, pm, "")
					if err != nil {
						return nil, err
					}
					out[i], found = m, true
					break
				}
			}
			if !found {
				added = append(added, deepCopy(pm))
			}
		}
		return append(added, out...), nil
	default:
		return p, nil
	}
}

// setImages applies one kustomize image change to every container and
// init container; it returns how many it changed.
func setImages(objs []object, im imageChange) int {
	n := 0
	for _, o := range objs {
		spec := podSpecOf(o)
		if spec == nil {
			continue
		}
		for _, list := range []string{"containers", "initContainers"} {
			cs, _ := spec[list].([]any)
			for _, c := range cs {
				cm := c.(object)
				img, _ := cm["image"].(string)
				name, tag, digest := splitImage(img)
				if name != im.Name {
					continue
				}
				if im.NewName != "" {
					name = im.NewName
				}
				if im.NewTag != "" {
					tag = im.NewTag
				}
				if im.Digest != "" {
					tag, digest = "", im.Digest
				}
				img = name
				if tag != "" {
					img += ":" + tag
				}
				if digest != "" {
					img += "@" + digest
				}
				cm["image"] = img
				n++
			}
		}
	}
	return n
}

// splitImage cuts an image reference into name, tag and digest.
func splitImage(ref string) (name, tag, digest string) {
	if i := strings.Index(ref, "@"); i >= 0 {
		ref, digest = ref[:i], ref[i+1:]
	}
	if i := strings.LastIndex(ref, ":"); i > strings.LastIndex(ref, "/") {
		ref, tag = ref[:i], ref[i+1:]
	}
	return ref, tag, digest
}

// podSpecOf returns the pod template spec of a workload, or nil.
func podSpecOf(o object) object {
	switch str(o, "kind") {
	case "Deployment", "StatefulSet", "DaemonSet", "Job", "ReplicaSet":
		spec, _ := dig(o, "spec", "template", "spec").(object)
		return spec
	}
	return nil
}

func labelsMatch(o object, selector string) bool {
	if selector == "" {
		return true
	}
	labels, _ := dig(o, "metadata", "labels").(object)
	for _, term := range strings.Split(selector, ",") {
		k, v, ok := strings.Cut(term, "=")
		if !ok || labels[strings.TrimSpace(k)] != strings.TrimSpace(v) {
			return false
		}
	}
	return true
}

func objectID(o object) string {
	ns := str(o, "metadata", "namespace")
	if ns != "" {
		ns += "/"
	}
	return fmt.Sprintf("%s %s%s", str(o, "kind"), ns, str(o, "metadata", "name"))
}

func apiGroup(o object) string {
	g, _, ok := strings.Cut(str(o, "apiVersion"), "/")
	if !ok {
		return ""
	}
	return g
}

func sameID(a, b object) bool {
	return apiGroup(a) == apiGroup(b) && str(a, "kind") == str(b, "kind") &&
		str(a, "metadata", "name") == str(b, "metadata", "name") &&
		str(a, "metadata", "namespace") == str(b, "metadata", "namespace")
}

func dig(v any, path ...string) any {
	for _, p := range path {
		m, ok := v.(object)
		if !ok {
			return nil
		}
		v = m[p]
	}
	return v
}

func str(v any, path ...string) string {
	s, _ := dig(v, path...).(string)
	return s
}

func deepCopy(v any) any {
	switch t := v.(type) {
	case object:
		out := make(object, len(t))
		for k, e := range t {
			out[k] = deepCopy(e)
		}
		return out
	case []any:
		out := make([]any, len(t))
		for i, e := range t {
			out[i] = deepCopy(e)
		}
		return out
	default:
		return v
	}
}

// kustomizations are the folders an administrator applies.
var kustomizations = []string{"base", "overlays/dev", "overlays/external-etcd"}

// renderAll renders every kustomization, failing the test on error.
func renderAll(t *testing.T) map[string][]object {
	t.Helper()
	out := map[string][]object{}
	for _, dir := range kustomizations {
		objs, err := render(dir)
		if err != nil {
			t.Fatalf("render %s: %v", dir, err)
		}
		out[dir] = objs
	}
	return out
}

func TestRenderPatches(t *testing.T) {
	// The renderer's own semantics, on a small case: merge by key, add,
	// null removes, lists without a key are replaced.
	orig := object{"spec": object{"containers": []any{
		object{"name": "a", "image": "x", "args": []any{"1", "2"}, "env": []any{object{"name": "E", "value": "1"}}},
	}}, "data": object{"K": "v", "L": "w"}}
	patch := object{"spec": object{"containers": []any{
		object{"name": "a", "args": []any{"3"}, "env": []any{object{"name": "F", "value": "2"}}},
		object{"name": "b", "image": "y"},
	}}, "data": object{"K": nil}}
	got, err := strategicMerge(orig, patch, "")
	if err != nil {
		t.Fatal(err)
	}
	want := object{"spec": object{"containers": []any{ // new elements first, as kustomize orders them
		object{"name": "b", "image": "y"},
		object{"name": "a", "image": "x", "args": []any{"3"}, "env": []any{object{"name": "F", "value": "2"}, object{"name": "E", "value": "1"}}},
	}}, "data": object{"L": "w"}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("merge:\n got %v\nwant %v", got, want)
	}
	if _, err := strategicMerge(orig, object{"spec": object{"$retainKeys": []any{}}}, ""); err == nil {
		t.Fatal("an unsupported directive was accepted")
	}
	for ref, want := range map[string][3]string{
		"ghcr.io/rwxfs/rwxfs:v1":              {"ghcr.io/rwxfs/rwxfs", "v1", ""},
		"localhost:5000/rwxfs":                {"localhost:5000/rwxfs", "", ""},
		"localhost:5000/rwxfs:v2@sha256:abcd": {"localhost:5000/rwxfs", "v2", "sha256:abcd"},
	} {
		n, tag, d := splitImage(ref)
		if [3]string{n, tag, d} != want {
			t.Errorf("splitImage(%q) = %q %q %q, want %v", ref, n, tag, d, want)
		}
	}
}

// TestKubectlKustomize renders every kustomization with kubectl's
// kustomize too and requires the same objects, so that what these tests
// check is what an administrator applies.
func TestKubectlKustomize(t *testing.T) {
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		t.Skip("kubectl is not installed; the renderer is checked by TestRenderPatches only")
	}
	for dir, objs := range renderAll(t) {
		t.Run(dir, func(t *testing.T) {
			out, err := exec.Command(kubectl, "kustomize", dir).Output()
			if err != nil {
				var stderr []byte
				if ee, ok := err.(*exec.ExitError); ok {
					stderr = ee.Stderr
				}
				t.Fatalf("kubectl kustomize %s: %v\n%s", dir, err, stderr)
			}
			f := filepath.Join(t.TempDir(), "out.yaml")
			if err := os.WriteFile(f, out, 0o600); err != nil {
				t.Fatal(err)
			}
			theirs, err := readObjects(f)
			if err != nil {
				t.Fatal(err)
			}
			mine := map[string]object{}
			for _, o := range objs {
				mine[objectID(o)] = o
			}
			var ids []string
			for _, o := range theirs {
				id := objectID(o)
				ids = append(ids, id)
				m, ok := mine[id]
				if !ok {
					t.Errorf("kubectl renders %s, the test renderer does not", id)
					continue
				}
				if !reflect.DeepEqual(m, o) {
					a, _ := json.MarshalIndent(m, "", " ")
					b, _ := json.MarshalIndent(o, "", " ")
					t.Errorf("%s differs:\ntest renderer: %s\nkubectl: %s", id, a, b)
				}
				delete(mine, id)
			}
			for id := range mine {
				t.Errorf("the test renderer renders %s, kubectl does not", id)
			}
			sort.Strings(ids)
			t.Logf("%d objects identical", len(ids))
		})
	}
}
