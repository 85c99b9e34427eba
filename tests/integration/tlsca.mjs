// Throw-away certificate authorities for the TLS tests, made with the
// openssl command line in a temporary directory: nothing here is trusted by
// anything but the test that made it, and the directory goes with the test.
//
//   const ca = makeCa(dir, 'a');                       // dir/a-ca.pem, dir/a-ca.key
//   const c = issue(ca, 'server1', { serial: 0x1001 }); // dir/server1.pem, .key
//
// Keys are P-256 (quick to make) unless `rsa` asks for RSA. A certificate names localhost and
// 127.0.0.1 unless `sans` says otherwise; `days: 0` makes one whose notAfter
// is its notBefore, expired a second after it was made. The serial is what
// a client reads back (getPeerCertificate().serialNumber, upper-case hex),
// so a test can tell which certificate a server presented.
import { execFileSync } from 'node:child_process';
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import path from 'node:path';
import tls from 'node:tls';

function openssl(args, cwd) {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

// A self-signed CA valid for a day: { dir, name, cert, key }.
export function makeCa(dir, name) {
  const cert = path.join(dir, `${name}-ca.pem`);
  const key = path.join(dir, `${name}-ca.key`);
  openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
    '-keyout', key, '-out', cert, '-days', '1', '-subj', `/CN=Lectern test CA ${name}`,
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
  return { dir, name, cert, key };
}

// A leaf certificate signed by `ca`: { cert, key, serial } (serial as
// clients report it). `client: true` makes a client certificate; `rsa: true`
// an RSA-2048 key instead of P-256 (only an RSA certificate can be used with
// the key exchanges without forward secrecy, so only it can show that a
// server refuses them).
export function issue(ca, name, { serial = Math.floor(Math.random() * 0xffffff) + 0x100000,
  sans = ['DNS:localhost', 'IP:127.0.0.1'], days = 1, client = false, rsa = false } = {}) {
  const cert = path.join(ca.dir, `${name}.pem`);
  const key = path.join(ca.dir, `${name}.key`);
  const csr = path.join(ca.dir, `${name}.csr`);
  const ext = path.join(ca.dir, `${name}.ext`);
  writeFileSync(ext, [
    `subjectAltName=${sans.join(',')}`,
    'basicConstraints=critical,CA:FALSE',
    'keyUsage=critical,digitalSignature,keyEncipherment',
    `extendedKeyUsage=${client ? 'clientAuth' : 'serverAuth'}`,
  ].join('\n') + '\n');
  const keyArgs = rsa ? ['-newkey', 'rsa:2048'] : ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256'];
  openssl(['req', ...keyArgs, '-nodes', '-keyout', key, '-out', csr, '-subj', `/CN=${name}`]);
  openssl(['x509', '-req', '-in', csr, '-CA', ca.cert, '-CAkey', ca.key, '-set_serial',
    `0x${serial.toString(16)}`, '-days', String(days), '-extfile', ext, '-out', cert]);
  return { cert, key, serial: serial.toString(16).toUpperCase().padStart(2, '0') };
}

// Put `pair`'s files where a server reads its own (cert.pem, key.pem under
// `dir`, say), replacing what is there.
export function install(pair, certPath, keyPath) {
  copyFileSync(pair.cert, certPath);
  copyFileSync(pair.key, keyPath);
}

// Connect with TLS to 127.0.0.1:port trusting `ca` (a PEM path) and
// resolve with { serial, protocol, cipher } of the session; reject with
// the client's error (a refused certificate, a refused version). `opts`
// goes to tls.connect (minVersion, maxVersion, ciphers, servername...).
export function tlsProbe(port, ca, opts = {}) {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port, servername: 'localhost', ca: ca && readPem(ca),
      ALPNProtocols: ['http/1.1'], ...opts });
    s.setTimeout(5000, () => s.destroy(new Error('TLS probe timed out')));
    s.once('secureConnect', () => {
      const c = s.getPeerCertificate();
      const out = { serial: c.serialNumber, protocol: s.getProtocol(), cipher: s.getCipher().name,
        alpn: s.alpnProtocol };
      s.end();
      resolve(out);
    });
    s.once('error', reject);
  });
}

// A PEM file's contents, for the `ca` option of tls and ws.
export function readPem(p) {
  return readFileSync(p);
}

// An HTTPS request to 127.0.0.1:port (server name localhost) trusting `ca`:
// resolves with { status, text }, rejects on a refused certificate.
export function httpsRequest(port, urlPath, ca, { method = 'GET', headers = {}, body } = {}) {
  return new Promise((resolve, reject) => {
    const req = https.request({ host: '127.0.0.1', port, path: urlPath, method, servername: 'localhost',
      ca: readPem(ca), headers, agent: false, timeout: 5000 }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d) => { text += d; });
      res.on('end', () => resolve({ status: res.statusCode, text }));
    });
    req.on('timeout', () => req.destroy(new Error('HTTPS request timed out')));
    req.on('error', reject);
    req.end(body);
  });
}

// A readiness probe for startServer ({ probe }): GET path over HTTPS
// trusting `ca` answers 200.
export const https200 = (ca) => (port, urlPath) => async () =>
  (await httpsRequest(port, urlPath, ca)).status === 200;

// A metric's value from /metrics over HTTPS (as helpers.metric does over HTTP).
export async function httpsMetric(port, ca, name) {
  const { text } = await httpsRequest(port, '/metrics', ca);
  const esc = name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const m = text.match(new RegExp(`^${esc} (\\d+)$`, 'm'));
  if (!m) throw new Error(`no metric ${name} on port ${port}`);
  return Number(m[1]);
}
