'use strict';
// check_subset.js PROTO_DIR: proves that our .proto subset (xds/proto) is a
// faithful subset of Envoy's own API: every message, enum and service we
// declare exists in Envoy's tree under the same full name and in the same
// file, and every field we declare has Envoy's number, type, label and oneof.
// Our enums must list every value Envoy's do. Prints one line per problem and
// exits 1 if there is any.
//
//   node tests/node/check_subset.js xds/proto

const fs = require('fs');
const path = require('path');
const protobuf = require('protobufjs');
const envoy = require('./envoy_protos');

function protoFiles(dir) {
  const files = [];
  const walk = (sub) => {
    for (const entry of fs.readdirSync(path.join(dir, sub), {withFileTypes: true})) {
      const relative = path.posix.join(sub, entry.name);
      if (entry.isDirectory()) walk(relative);
      else if (entry.name.endsWith('.proto')) files.push(relative);
    }
  };
  walk('');
  // Istio's CA API (istio/v1/auth/ca.proto) is not in the Envoy tree we
  // compare against; it is whole, not a subset, and the CA tests exercise it
  // against grpc-js.
  return files.filter((f) => !f.startsWith('istio/')).sort();
}

// The file a type was declared in, relative to its include folder.
function relativeFile(type, includeDirs) {
  for (const dir of includeDirs) {
    if (type.filename && type.filename.startsWith(dir + path.sep)) {
      return path.relative(dir, type.filename).split(path.sep).join('/');
    }
  }
  return type.filename;
}

function typeName(field) {
  return field.resolvedType ? field.resolvedType.fullName : field.type;
}

function main(argv) {
  if (argv.length !== 1) {
    console.error('usage: node check_subset.js PROTO_DIR');
    return 2;
  }
  const ourDir = path.resolve(argv[0]);
  const ours = envoy.loadRoot([ourDir], protoFiles(ourDir));
  const theirs = envoy.loadRoot(envoy.INCLUDE_DIRS, protoFiles(ourDir));
  const problems = [];
  const counts = {messages: 0, fields: 0, enums: 0, services: 0};

  const visit = (namespace) => {
    for (const object of namespace.nestedArray) {
      const name = object.fullName.slice(1);
      if (name.startsWith('google.protobuf.')) continue;
      if (object instanceof protobuf.Type || object instanceof protobuf.Enum ||
          object instanceof protobuf.Service) {
        const other = theirs.lookup(object.fullName);
        if (!other || other.constructor !== object.constructor) {
          problems.push(`${name}: not in Envoy's API`);
          continue;
        }
        const ourFile = relativeFile(object, [ourDir]);
        const theirFile = relativeFile(other, envoy.INCLUDE_DIRS);
        if (ourFile !== theirFile) {
          problems.push(`${name}: declared in ${ourFile}, Envoy declares it in ${theirFile}`);
        }
        if (object instanceof protobuf.Type) compareMessage(name, object, other);
        if (object instanceof protobuf.Enum) compareEnum(name, object, other);
        if (object instanceof protobuf.Service) compareService(name, object, other);
      }
      if (object.nestedArray) visit(object);
    }
  };

  const compareMessage = (name, ourType, theirType) => {
    counts.messages++;
    for (const field of ourType.fieldsArray) {
      counts.fields++;
      const where = `${name}.${field.name}`;
      const other = theirType.fields[field.name];
      if (!other) {
        problems.push(`${where}: Envoy has no such field`);
        continue;
      }
      if (field.id !== other.id) problems.push(`${where}: number ${field.id}, Envoy's is ${other.id}`);
      if (typeName(field) !== typeName(other)) {
        problems.push(`${where}: type ${typeName(field)}, Envoy's is ${typeName(other)}`);
      }
      if (field.repeated !== other.repeated || field.map !== other.map) {
        problems.push(`${where}: label differs from Envoy's`);
      }
      const ourOneof = field.partOf ? field.partOf.name : null;
      const theirOneof = other.partOf ? other.partOf.name : null;
      if (ourOneof !== theirOneof) {
        problems.push(`${where}: oneof ${ourOneof}, Envoy's is ${theirOneof}`);
      }
    }
  };

  const compareEnum = (name, ourEnum, theirEnum) => {
    counts.enums++;
    for (const [value, number] of Object.entries(theirEnum.values)) {
      if (ourEnum.values[value] === undefined) problems.push(`${name}.${value}: missing`);
      else if (ourEnum.values[value] !== number) {
        problems.push(`${name}.${value}: ${ourEnum.values[value]}, Envoy's is ${number}`);
      }
    }
    for (const value of Object.keys(ourEnum.values)) {
      if (theirEnum.values[value] === undefined) problems.push(`${name}.${value}: not in Envoy's`);
    }
  };

  const compareService = (name, ourService, theirService) => {
    counts.services++;
    for (const method of ourService.methodsArray) {
      const other = theirService.methods[method.name];
      const shape = (m) =>
        `${m.requestStream ? 'stream ' : ''}${m.resolvedRequestType.fullName} -> ` +
        `${m.responseStream ? 'stream ' : ''}${m.resolvedResponseType.fullName}`;
      if (!other) problems.push(`${name}.${method.name}: Envoy has no such method`);
      else if (shape(method) !== shape(other)) {
        problems.push(`${name}.${method.name}: ${shape(method)}, Envoy's is ${shape(other)}`);
      }
    }
  };

  visit(ours);
  for (const problem of problems) console.log(`subset problem: ${problem}`);
  console.log(
    `subset check: ${counts.messages} messages, ${counts.fields} fields, ${counts.enums} enums, ` +
      `${counts.services} services compared with Envoy's; ${problems.length} problems`,
  );
  return problems.length === 0 ? 0 : 1;
}

process.exitCode = main(process.argv.slice(2));
