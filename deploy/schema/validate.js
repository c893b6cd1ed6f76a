#!/usr/bin/env node
// validate.js: checks Kubernetes manifests against Kubernetes' API schema,
// offline, with unknown fields as errors (what `kubectl apply
// --validate=strict` and kubeconform -strict refuse).
//
//   node deploy/schema/validate.js [--patch FILE]... PATH...
//
// PATH is a YAML file (multi-document), "-" (standard input) or a folder (its
// *.yaml and *.yml, recursively). Prints one line per document, `FILE[i] KIND NAME: ok` or its
// errors, each with the JSON path of the field, and exits 1 if any document
// has one, or if there was no document at all (2 on a usage error).
//
// The schema: kubernetes-models (Kubernetes 1.33's OpenAPI; package.json pins
// it) and @kubernetes-models/cert-manager (cert-manager's CRDs). Both ship
// their JSON schemas compiled by ajv into standalone validators
// (`_schemas/*.js`), which check types, required fields, enums and formats
// but, as Kubernetes' OpenAPI never sets additionalProperties: false, accept
// any unknown field. This script closes them: it runs each validator on a
// proxy of the document that records which keys the validator reads. A
// compiled `properties` schema reads exactly the keys it lists; a map
// (labels, annotations, data: `additionalProperties: {...}`) reads every key.
// So a key that no validator read is a field the schema does not have: an
// error, "unknown field". That is kubeconform's strict mode (every schema
// with `properties` and no `additionalProperties` is closed), done on the
// compiled schema instead of the JSON.
//
// A kind with no schema (neither package knows its apiVersion and kind) is an
// error, "no schema for KIND", never a pass. Kustomize's own files
// (kustomize.config.k8s.io) are not API objects: reported as skipped. In a
// folder, the files a kustomization names as strategic-merge patches
// (`patches: [{path}]`, `patchesStrategicMerge`), and files given with
// --patch, are partial objects: checked the same except for required fields.
"use strict";

const fs = require("fs");
const path = require("path");
const YAML = require("yaml");

const MODEL_PACKAGES = [
  path.join(__dirname, "node_modules", "kubernetes-models"),
  path.join(__dirname, "node_modules", "@kubernetes-models", "cert-manager"),
];

for (const dir of MODEL_PACKAGES) {
  if (!fs.existsSync(dir)) {
    console.error(`validate.js: ${dir} is missing: run \`npm ci --prefix deploy/schema\` ` +
      "(tools/install-deps.sh does it)");
    process.exit(2);
  }
}

// The compiled validator of apiVersion/kind, or null. A model file
// (<package>/<group>/<version>/<Kind>.js) declares its apiVersion and kind
// and names its validator in _schemas/.
const validators = new Map();
function validatorFor(apiVersion, kind) {
  const key = `${apiVersion}/${kind}`;
  if (validators.has(key)) return validators.get(key);
  let found = null;
  if (/^[a-z0-9.-]+(\/[a-z0-9]+)?$/.test(apiVersion) && /^[A-Za-z0-9]+$/.test(kind)) {
    for (const dir of MODEL_PACKAGES) {
      const model = path.join(dir, apiVersion, `${kind}.js`);
      if (!fs.existsSync(model)) continue;
      const source = fs.readFileSync(model, "utf8");
      const schema = /_schemas\/(\w+)\.js/.exec(source);
      if (!schema || !source.includes(`.apiVersion="${apiVersion}"`) ||
          !source.includes(`.kind="${kind}"`)) {
        continue; // a nested type (Container, ...), not a top-level kind
      }
      found = require(path.join(dir, "_schemas", `${schema[1]}.js`)).validate;
      break;
    }
  }
  validators.set(key, found);
  return found;
}

// A proxy of value that records, per plain object, the own keys read.
function traced(value, reads, cache) {
  if (value === null || typeof value !== "object") return value;
  if (cache.has(value)) return cache.get(value);
  const isArray = Array.isArray(value);
  if (!isArray) reads.set(value, new Set());
  const proxy = new Proxy(value, {
    get(target, prop, receiver) {
      if (typeof prop === "string" && Object.prototype.hasOwnProperty.call(target, prop)) {
        if (!isArray) reads.get(target).add(prop);
        return traced(target[prop], reads, cache);
      }
      return Reflect.get(target, prop, receiver);
    },
  });
  cache.set(value, proxy);
  return proxy;
}

// "spec.template.spec.initContainers[0].name" from "/spec/template/...".
function jsonPath(pointer) {
  if (pointer === "") return "(document)";
  let out = "";
  for (const raw of pointer.split("/").slice(1)) {
    const part = raw.replace(/~1/g, "/").replace(/~0/g, "~");
    if (/^[0-9]+$/.test(part)) out += `[${part}]`;
    else if (/^[A-Za-z_$][\w$-]*$/.test(part)) out += (out ? "." : "") + part;
    else out += `[${JSON.stringify(part)}]`;
  }
  return out;
}

function describe(error) {
  const p = error.params || {};
  switch (error.keyword) {
    case "required": return { path: error.instancePath + "/" + p.missingProperty,
      message: "required field is missing" };
    case "type": return { path: error.instancePath, message: `must be ${p.type}` };
    case "enum": return { path: error.instancePath,
      message: `must be one of ${p.allowedValues.map((v) => JSON.stringify(v)).join(", ")}` };
    case "format": return { path: error.instancePath, message: `must be a valid ${p.format}` };
    default: return { path: error.instancePath,
      message: `${error.keyword} ${JSON.stringify(p)}`.trim() };
  }
}

// Every error of doc against its kind's schema, as [{path, message}].
function check(doc, partial) {
  if (doc === null || typeof doc !== "object" || Array.isArray(doc)) {
    return { errors: [{ path: "(document)", message: "is not an object" }] };
  }
  const { apiVersion, kind } = doc;
  if (typeof apiVersion !== "string" || typeof kind !== "string") {
    return { errors: [{ path: "(document)", message: "has no apiVersion and kind" }] };
  }
  if (apiVersion.startsWith("kustomize.config.k8s.io/")) return { skipped: true };
  const validate = validatorFor(apiVersion, kind);
  if (!validate) {
    return { errors: [{ path: "(document)", message: `no schema for ${kind} (${apiVersion})` }] };
  }
  // A copy in which every object appears once: YAML aliases (&a, *a) share
  // one object, whose reads would count for each place it appears.
  doc = JSON.parse(JSON.stringify(doc));
  const reads = new Map();
  validate(traced(doc, reads, new Map()));
  let raw = validate.errors || [];
  if (partial) raw = raw.filter((e) => e.keyword !== "required");
  // A nullable reference is oneOf [{$ref}, {type: null}]: when the reference
  // fails, the "must be null" and oneOf errors only repeat it.
  const deeper = (e) => raw.some((o) => o !== e && o.keyword !== "oneOf" &&
    !(o.keyword === "type" && o.params.type === "null") &&
    (o.instancePath === e.instancePath || o.instancePath.startsWith(e.instancePath + "/")));
  raw = raw.filter((e) => !((e.keyword === "oneOf" || (e.keyword === "type" && e.params.type === "null")) && deeper(e)));
  const errors = raw.map(describe);
  // Unknown fields: keys of an object the validator entered but never read.
  (function walk(value, pointer) {
    if (value === null || typeof value !== "object") return;
    if (Array.isArray(value)) {
      value.forEach((item, i) => walk(item, `${pointer}/${i}`));
      return;
    }
    const read = reads.get(value);
    for (const key of Object.keys(value)) {
      const child = `${pointer}/${key.replace(/~/g, "~0").replace(/\//g, "~1")}`;
      if (read && !read.has(key)) {
        errors.push({ path: child, message: "unknown field" });
      } else {
        walk(value[key], child);
      }
    }
  })(doc, "");
  const seen = new Set();
  return {
    errors: errors
      .map((e) => ({ path: jsonPath(e.path), message: e.message }))
      .filter((e) => !seen.has(e.path + e.message) && seen.add(e.path + e.message)),
  };
}

// Each file's text, read once (a file may be a pipe: /dev/stdin, "-").
const texts = new Map();
function read(file) {
  if (!texts.has(file)) texts.set(file, fs.readFileSync(file === "-" ? 0 : file, "utf8"));
  return texts.get(file);
}

// The files a kustomization in dir names as strategic-merge patches.
function patchesOf(file) {
  const out = [];
  let docs;
  try {
    docs = YAML.parseAllDocuments(read(file)).map((d) => d.toJS());
  } catch (e) {
    return out;
  }
  for (const doc of docs) {
    if (!doc || !String(doc.apiVersion || "").startsWith("kustomize.config.k8s.io/")) continue;
    for (const p of doc.patches || []) if (p && p.path) out.push(path.resolve(path.dirname(file), p.path));
    for (const p of doc.patchesStrategicMerge || []) {
      if (typeof p === "string" && !p.includes("\n")) out.push(path.resolve(path.dirname(file), p));
    }
  }
  return out;
}

function yamlFiles(dir) {
  const out = [];
  for (const entry of fs.readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) {
      if (entry.name !== "node_modules") out.push(...yamlFiles(full));
    } else if (/\.ya?ml$/.test(entry.name)) {
      out.push(full);
    }
  }
  return out;
}

function main(argv) {
  const patches = new Set();
  const inputs = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === "--patch" && i + 1 < argv.length) patches.add(path.resolve(argv[++i]));
    else if (argv[i] === "-") inputs.push(argv[i]);
    else if (argv[i] === "-h" || argv[i] === "--help" || argv[i].startsWith("-")) {
      console.error("usage: validate.js [--patch FILE]... PATH...   (PATH: a YAML file or a folder)");
      return 2;
    } else inputs.push(argv[i]);
  }
  for (const p of patches) inputs.push(p);
  if (inputs.length === 0) {
    console.error("usage: validate.js [--patch FILE]... PATH...   (PATH: a YAML file or a folder)");
    return 2;
  }
  const files = [];
  for (const input of inputs) {
    if (input === "-") {
      files.push(input);
      continue;
    }
    if (!fs.existsSync(input)) {
      console.error(`validate.js: ${input}: no such file or folder`);
      return 2;
    }
    if (fs.statSync(input).isDirectory()) files.push(...yamlFiles(input));
    else files.push(input);
  }
  for (const file of files) for (const p of patchesOf(file)) patches.add(p);

  let documents = 0;
  let failed = 0;
  const done = new Set();
  for (const file of files) {
    const abs = path.resolve(file);
    if (done.has(abs)) continue;
    done.add(abs);
    const partial = patches.has(abs);
    // YAML 1.1, as Kubernetes reads it (sigs.k8s.io/yaml): `on` is a boolean,
    // 0444 an octal number.
    const parsed = YAML.parseAllDocuments(read(file), { version: "1.1", uniqueKeys: true });
    parsed.forEach((yamlDoc, i) => {
      const where = `${file}[${i}]`;
      if (yamlDoc.errors.length) {
        documents++;
        failed++;
        console.log(`${where}: FAIL`);
        for (const e of yamlDoc.errors) console.log(`  not valid YAML: ${e.message.split("\n")[0]}`);
        return;
      }
      const doc = yamlDoc.toJS({ maxAliasCount: -1 });
      if (doc === null || doc === undefined) return; // an empty document
      documents++;
      const name = (doc && doc.metadata && doc.metadata.name) || "(no name)";
      const label = `${where} ${(doc && doc.kind) || "(no kind)"} ${name}${partial ? " (patch)" : ""}`;
      const result = check(doc, partial);
      if (result.skipped) {
        console.log(`${label}: skipped (kustomize's own file, not an API object)`);
      } else if (result.errors.length === 0) {
        console.log(`${label}: ok`);
      } else {
        failed++;
        console.log(`${label}: FAIL`);
        for (const e of result.errors) console.log(`  ${e.path}: ${e.message}`);
      }
    });
  }
  if (documents === 0) {
    console.log("validate.js: FAIL: no documents in " + inputs.join(" ") + " (nothing was checked)");
    return 1;
  }
  console.log(`validate.js: ${documents - failed} of ${documents} documents valid` +
    (failed ? `, ${failed} with errors` : ""));
  return failed ? 1 : 0;
}

process.exitCode = main(process.argv.slice(2));
