// Validate Strimzi, KEDA and Prometheus Operator objects against their projects' published
// schemas (the @kubernetes-models packages). Usage: node validate.mjs MODELS_DIR < objects.json
// where objects.json is a JSON list of objects; prints one line per invalid object and exits
// 1 if any, 2 if an object's kind has no schema here.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const PACKAGES = {
  "kafka.strimzi.io": "strimzi-kafka-operator",
  "keda.sh": "keda",
  "monitoring.coreos.com": "prometheus-operator",
};

const modelsDir = process.argv[2];
const objects = JSON.parse(readFileSync(0, "utf8"));
let invalid = 0;
for (const object of objects) {
  const [group, version] = object.apiVersion.split("/");
  const name = `${object.kind}/${object.metadata?.name}`;
  const pkg = PACKAGES[group];
  if (!pkg) {
    console.log(`${name}: no published schema for ${object.apiVersion} here`);
    process.exit(2);
  }
  const file = join(modelsDir, "node_modules", "@kubernetes-models", pkg, group, version, `${object.kind}.js`);
  let Model;
  try {
    Model = (await import(pathToFileURL(file).href))[object.kind];
  } catch (error) {
    console.log(`${name}: no schema for ${object.apiVersion} ${object.kind} (${error.code || error.message})`);
    process.exit(2);
  }
  try {
    new Model(object).validate();
  } catch (error) {
    invalid += 1;
    const details = (error.errors || []).map((e) => `${e.instancePath || "/"} ${e.message}`).join("; ");
    console.log(`${name}: ${details || error.message}`);
  }
}
console.log(`${objects.length} objects checked, ${invalid} invalid`);
process.exit(invalid ? 1 : 0);
