// Validates Kubernetes manifests against the API's schemas (kubernetes-models, generated from Kubernetes' OpenAPI)
// and checks the links between Keel's objects: usage: node validate.mjs FILE.yaml...
// Prints one line per object and exits 1 on the first file with an invalid object.
import { readFileSync } from "node:fs";
import { parseAllDocuments } from "yaml";

const groups = { "v1": "v1", "apps/v1": "apps/v1", "policy/v1": "policy/v1" };
let failed = false;
const objects = [];
for (const file of process.argv.slice(2)) {
  for (const document of parseAllDocuments(readFileSync(file, "utf8"))) {
    if (document.errors.length > 0) { console.error(`${file}: YAML error: ${document.errors[0].message}`); failed = true; continue; }
    const object = document.toJS();
    if (object === null) continue;
    const name = `${file}: ${object.kind}/${object.metadata?.name}`;
    const folder = groups[object.apiVersion];
    if (!folder) { console.error(`${name}: apiVersion ${object.apiVersion} is not one this check knows`); failed = true; continue; }
    let Model;
    try {
      Model = (await import(`kubernetes-models/${folder}/${object.kind}`))[object.kind];
    } catch {
      console.error(`${name}: unknown kind ${object.kind} in ${object.apiVersion}`); failed = true; continue;
    }
    try {
      new Model(object).validate();
      console.log(`${name}: valid`);
      objects.push(object);
    } catch (error) {
      console.error(`${name}: INVALID: ${error.message}`);
      failed = true;
    }
  }
}
// The links a schema cannot see.
const byKind = (kind) => objects.filter((o) => o.kind === kind);
const matches = (selector, labels) => Object.entries(selector ?? {}).every(([k, v]) => labels?.[k] === v);
for (const set of byKind("StatefulSet")) {
  const service = byKind("Service").find((s) => s.metadata.name === set.spec.serviceName);
  if (!service) { console.error(`StatefulSet/${set.metadata.name}: serviceName ${set.spec.serviceName} is not defined`); failed = true; }
  else if (service.spec.clusterIP !== "None") { console.error(`Service/${service.metadata.name}: a StatefulSet's governing service must be headless`); failed = true; }
  if (!matches(set.spec.selector.matchLabels, set.spec.template.metadata.labels)) { console.error(`StatefulSet/${set.metadata.name}: selector does not match the pod labels`); failed = true; }
  const budgets = byKind("PodDisruptionBudget").filter((p) => matches(p.spec.selector.matchLabels, set.spec.template.metadata.labels));
  if (budgets.length !== 1) { console.error(`StatefulSet/${set.metadata.name}: expected one PodDisruptionBudget selecting its pods, found ${budgets.length}`); failed = true; }
}
for (const service of byKind("Service")) {
  const selected = objects.filter((o) => o.spec?.template && matches(service.spec.selector, o.spec.template.metadata.labels));
  if (service.spec.selector && selected.length === 0) { console.error(`Service/${service.metadata.name}: selects no workload`); failed = true; }
}
process.exit(failed ? 1 : 0);
