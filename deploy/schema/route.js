#!/usr/bin/env node
// route.js: which admission webhooks the API server would call for a request,
// decided from the webhook configurations as the API server decides it.
//
//   node deploy/schema/route.js CONFIG.yaml [REQUESTS|-]
//
// CONFIG.yaml holds MutatingWebhookConfigurations and
// ValidatingWebhookConfigurations (other documents are ignored). REQUESTS (or
// standard input) holds one JSON request per line:
//
//   {"object": {...}, "namespace": {"name": "shop", "labels": {...}},
//    "operation": "CREATE", "oldObject": null}
//
// (operation defaults to CREATE; the object is a Pod: group "", version v1,
// resource pods). For each, one JSON line is printed, flushed, before the next
// is read (check_manifests.py keeps this process open and asks again after
// each mutating webhook's patch):
//
//   {"webhooks": [{"configuration": "MutatingWebhookConfiguration",
//     "name": ..., "path": ..., "failurePolicy": ..., "reinvocationPolicy": ...,
//     "called": true|false, "why": "...", "error": "..."}, ...]}
//
// in the configurations' order, mutating ones first. A webhook is called when
// its rules match (operation, apiGroups, apiVersions, resources, scope; "*"
// matches all), its namespaceSelector matches the namespace's labels (with
// kubernetes.io/metadata.name set to the namespace's name, as the API server
// sets it), its objectSelector the object's labels, and every matchCondition
// is true. Label selectors as Kubernetes reads them: matchLabels and
// matchExpressions all hold; In needs the key with one of the values, NotIn and
// DoesNotExist match a namespace without the key, Exists needs it.
//
// matchConditions are evaluated by a real CEL engine (@marcbachmann/cel-js,
// package.json pins it) with Kubernetes' variables: object, oldObject (null
// at CREATE) and request (uid, kind, resource, namespace, operation, ...);
// `authorizer` is not provided: an expression that uses it is an error at
// load, exit 1. An expression that does not parse, or does not give a bool,
// is an error at load or for that request ("error", "called" then follows
// failurePolicy as the API server would: Fail rejects the request, Ignore
// skips the webhook; the caller reports it either way). Integers are CEL ints.
// Exits 2 on a usage error.
"use strict";

const fs = require("fs");
const path = require("path");
const readline = require("readline");
const YAML = require("yaml");

const NAME_LABEL = "kubernetes.io/metadata.name";

function usage() {
  console.error("usage: route.js CONFIG.yaml [REQUESTS|-]   (REQUESTS: JSON lines)");
  return 2;
}

// Does selector (a metav1.LabelSelector, or absent) select labels?
function selects(selector, labels) {
  if (!selector) return { ok: true };
  for (const [key, value] of Object.entries(selector.matchLabels || {})) {
    if (labels[key] !== value) return { ok: false, why: `matchLabels ${key}=${value}` };
  }
  for (const e of selector.matchExpressions || []) {
    const has = Object.prototype.hasOwnProperty.call(labels, e.key);
    const values = e.values || [];
    let ok;
    switch (e.operator) {
      case "In": ok = has && values.includes(labels[e.key]); break;
      case "NotIn": ok = !has || !values.includes(labels[e.key]); break;
      case "Exists": ok = has; break;
      case "DoesNotExist": ok = !has; break;
      default: throw new Error(`unknown selector operator ${JSON.stringify(e.operator)}`);
    }
    if (!ok) {
      return { ok: false, why: `${e.key} ${e.operator}${values.length ? " " + JSON.stringify(values) : ""}` +
        ` (${has ? JSON.stringify(labels[e.key]) : "no such label"})` };
    }
  }
  return { ok: true };
}

function ruleMatches(rules, req) {
  const any = (list, value) => (list || []).includes("*") || (list || []).includes(value);
  return (rules || []).some((r) =>
    any(r.operations, req.operation) && any(r.apiGroups, req.resource.group) &&
    any(r.apiVersions, req.resource.version) && any(r.resources, req.resource.resource) &&
    (!r.scope || r.scope === "*" || r.scope === (req.namespace ? "Namespaced" : "Cluster")));
}

// JSON numbers that are integers become CEL ints (BigInt), as the API server
// types them.
function celValue(value) {
  if (typeof value === "number" && Number.isInteger(value)) return BigInt(value);
  if (Array.isArray(value)) return value.map(celValue);
  if (value !== null && typeof value === "object") {
    const out = {};
    for (const [k, v] of Object.entries(value)) out[k] = celValue(v);
    return out;
  }
  return value;
}

async function main(argv) {
  if (argv.length < 1 || argv.length > 2 || argv[0].startsWith("-")) return usage();
  const cel = path.join(__dirname, "node_modules", "@marcbachmann", "cel-js", "lib", "index.js");
  if (!fs.existsSync(cel)) {
    console.error(`route.js: ${cel} is missing: run \`npm ci --prefix deploy/schema\` ` +
      "(tools/install-deps.sh does it)");
    return 1;
  }
  const { Environment } = await import(cel);
  const env = new Environment()
    .registerVariable("object", "dyn")
    .registerVariable("oldObject", "dyn")
    .registerVariable("request", "dyn");
  const hooks = [];
  const docs = YAML.parseAllDocuments(fs.readFileSync(argv[0], "utf8")).map((d) => d.toJS());
  for (const kind of ["MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"]) {
    for (const doc of docs) {
      if (!doc || doc.kind !== kind) continue;
      for (const hook of doc.webhooks || []) {
        const conditions = [];
        for (const c of hook.matchConditions || []) {
          const where = `${kind} ${doc.metadata.name}: ${hook.name}: matchCondition ${c.name}`;
          const checked = env.check(c.expression);
          if (!checked.valid) {
            const used = /Unknown variable: (\w+)/.exec(checked.error.message);
            console.error(`route.js: ${where}: ` + (used && used[1] === "authorizer"
              ? "uses authorizer, which this offline check does not provide"
              : checked.error.message.split("\n")[0]));
            return 1;
          }
          if (checked.type !== "bool" && checked.type !== "dyn") {
            console.error(`route.js: ${where}: gives ${checked.type}, not bool`);
            return 1;
          }
          conditions.push({ name: c.name, run: env.parse(c.expression) });
        }
        hooks.push({ kind, hook, conditions, path: ((hook.clientConfig || {}).service || {}).path || null });
      }
    }
  }
  if (hooks.length === 0) {
    console.error(`route.js: no webhook configuration in ${argv[0]}`);
    return 1;
  }

  let uid = 0;
  function route(req) {
    const operation = req.operation || "CREATE";
    const ns = req.namespace || null;
    const labels = ns ? { ...(ns.labels || {}), [NAME_LABEL]: ns.name } : {};
    const object = req.object || null;
    const oldObject = req.oldObject === undefined ? null : req.oldObject;
    const resource = { group: "", version: "v1", resource: "pods" };
    uid++;
    const request = celValue({
      uid: `route-${uid}`, kind: { group: "", version: "v1", kind: "Pod" }, resource,
      requestKind: { group: "", version: "v1", kind: "Pod" }, requestResource: resource,
      name: (object && object.metadata && object.metadata.name) || "",
      namespace: ns ? ns.name : "", operation,
      userInfo: { username: "system:serviceaccount:kube-system:replicaset-controller" },
      dryRun: false,
    });
    const vars = { object: celValue(object), oldObject: celValue(oldObject), request };
    const out = [];
    for (const { kind, hook, conditions, path: hookPath } of hooks) {
      const entry = { configuration: kind, name: hook.name, path: hookPath,
        failurePolicy: hook.failurePolicy || "Fail", reinvocationPolicy: hook.reinvocationPolicy || "Never",
        called: false };
      out.push(entry);
      if (!ruleMatches(hook.rules, { operation, resource, namespace: ns && ns.name })) {
        entry.why = "rules";
        continue;
      }
      let chosen = ns ? selects(hook.namespaceSelector, labels) : { ok: true };
      if (!chosen.ok) {
        entry.why = `namespaceSelector: ${chosen.why}`;
        continue;
      }
      const objectLabels = (object && object.metadata && object.metadata.labels) || {};
      chosen = selects(hook.objectSelector, objectLabels);
      if (!chosen.ok) {
        entry.why = `objectSelector: ${chosen.why}`;
        continue;
      }
      // All must be true; a false one skips the webhook; an error (and no
      // false) applies the failure policy.
      let error = null;
      let skipped = null;
      for (const c of conditions) {
        try {
          const value = c.run(vars);
          if (typeof value !== "boolean") error = error || `matchCondition ${c.name} gave ${String(value)}, not a bool`;
          else if (!value) { skipped = c.name; break; }
        } catch (e) {
          error = error || `matchCondition ${c.name}: ${e.message.split("\n")[0]}`;
        }
      }
      if (skipped) {
        entry.why = `matchCondition ${skipped} is false`;
      } else if (error) {
        entry.error = error;
        entry.called = entry.failurePolicy === "Fail"; // Fail: rejected, as if called and denied
      } else {
        entry.called = true;
      }
    }
    return { webhooks: out };
  }

  const input = argv[1] && argv[1] !== "-" ? fs.createReadStream(argv[1]) : process.stdin;
  for await (const line of readline.createInterface({ input, crlfDelay: Infinity })) {
    if (!line.trim()) continue;
    let answer;
    try {
      answer = route(JSON.parse(line));
    } catch (e) {
      answer = { error: e.message.split("\n")[0] };
    }
    process.stdout.write(JSON.stringify(answer) + "\n");
  }
  return 0;
}

main(process.argv.slice(2)).then((rc) => { process.exitCode = rc; },
  (e) => { console.error(`route.js: ${e.stack || e}`); process.exitCode = 1; });
