// sa_token.js: Kubernetes-style service-account tokens for tests, made with
// Node's own crypto (a JOSE implementation written apart from ours).
//
//   node sa_token.js keygen --out DIR --kid KID [--alg RS256|ES256]
//       writes DIR/KID.key.pem (PKCS#8) and adds the public key to
//       DIR/jwks.json ({"keys": [...]}, as the API server's /openid/v1/jwks)
//   node sa_token.js jwks --out FILE --keys DIR/a.key.pem,DIR/b.key.pem
//       writes a key set holding exactly those keys (a rotation)
//   node sa_token.js mint --key DIR/KID.key.pem --kid KID --iss ISS --aud AUD
//       --ns NS --sa SA [--pod POD] [--exp-in SECONDS] [--nbf-in SECONDS]
//       [--alg RS256|ES256|none|HS256] [--sub SUB]
//       prints a token; --alg none signs nothing, --alg HS256 uses the
//       public key's PEM as the HMAC secret (the classic confusion attack)
'use strict';
const crypto = require('crypto');
const fs = require('fs');
const path = require('path');
const { parseArgs } = require('./grpc_peer_common');

const b64url = (buffer) => Buffer.from(buffer).toString('base64url');

function publicJwk(privatePem, kid) {
  const key = crypto.createPublicKey(crypto.createPrivateKey(privatePem));
  const jwk = key.export({ format: 'jwk' });
  const alg = jwk.kty === 'RSA' ? 'RS256' : 'ES256';
  return Object.assign({ use: 'sig', kid, alg }, jwk);
}

function keygen(args) {
  const alg = args.alg || 'RS256';
  const pair = alg === 'RS256'
    ? crypto.generateKeyPairSync('rsa', { modulusLength: 2048 })
    : crypto.generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  fs.mkdirSync(args.out, { recursive: true });
  const keyPath = path.join(args.out, `${args.kid}.key.pem`);
  fs.writeFileSync(keyPath, pair.privateKey.export({ type: 'pkcs8', format: 'pem' }));
  const jwksPath = path.join(args.out, 'jwks.json');
  const jwks = fs.existsSync(jwksPath) ? JSON.parse(fs.readFileSync(jwksPath)) : { keys: [] };
  jwks.keys.push(publicJwk(fs.readFileSync(keyPath), args.kid));
  fs.writeFileSync(jwksPath, JSON.stringify(jwks));
  console.log(keyPath);
}

function jwks(args) {
  const keys = args.keys.split(',').map((file) =>
    publicJwk(fs.readFileSync(file), path.basename(file).replace(/\.key\.pem$/, '')));
  const tmp = `${args.out}.tmp`;
  fs.writeFileSync(tmp, JSON.stringify({ keys }));
  fs.renameSync(tmp, args.out);
}

function mint(args) {
  const now = Math.floor(Date.now() / 1000);
  const privatePem = fs.readFileSync(args.key);
  const privateKey = crypto.createPrivateKey(privatePem);
  const alg = args.alg || (privateKey.asymmetricKeyType === 'rsa' ? 'RS256' : 'ES256');
  const header = { alg, kid: args.kid };
  if (alg === 'none') delete header.kid;
  const payload = {
    aud: [args.aud],
    exp: now + Number(args['exp-in'] || 3600),
    iat: now,
    iss: args.iss,
    nbf: now + Number(args['nbf-in'] || 0),
    sub: args.sub || `system:serviceaccount:${args.ns}:${args.sa}`,
    'kubernetes.io': {
      namespace: args.ns,
      pod: { name: args.pod || `${args.sa}-7d9f`, uid: crypto.randomUUID() },
      serviceaccount: { name: args.sa, uid: crypto.randomUUID() },
    },
  };
  const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(payload))}`;
  let signature = '';
  if (alg === 'RS256') {
    signature = b64url(crypto.sign('sha256', Buffer.from(input), privateKey));
  } else if (alg === 'ES256') {
    signature = b64url(crypto.sign('sha256', Buffer.from(input),
      { key: privateKey, dsaEncoding: 'ieee-p1363' }));
  } else if (alg === 'HS256') {
    const secret = crypto.createPublicKey(privateKey).export({ type: 'spki', format: 'pem' });
    signature = b64url(crypto.createHmac('sha256', secret).update(input).digest());
  }
  console.log(`${input}.${signature}`);
}

const [command, ...rest] = process.argv.slice(2);
const commands = { keygen, jwks, mint };
if (!commands[command]) {
  console.error('usage: node sa_token.js keygen|jwks|mint ...');
  process.exit(2);
}
commands[command](parseArgs(rest, []));
