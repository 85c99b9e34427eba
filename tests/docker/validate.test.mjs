// tests/docker/validate.test.mjs — the Docker deployment passes its static
// validation (tests/docker/validate.mjs), and the validator catches each kind
// of mistake: it runs on the real tree, then on broken copies of it.
//
//   cd tests && node --test docker/
//
// A broken copy is a temporary directory with docker/ and .dockerignore
// copied (then edited) and everything else of the repository symlinked, so
// the validator sees the real sources, metrics and Makefile. Every edit
// asserts that the text it replaces exists, so a change to the deployment
// files cannot turn a negative test into one that passes vacuously.

import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..', '..');
const validator = path.join(here, 'validate.mjs');
const env = {
  ...process.env,
  LECTERN_SERVER_BIN: process.env.LECTERN_SERVER_BIN || path.join(root, 'bin', 'lectern-server'),
  LECTERN_STORAGE_BIN: process.env.LECTERN_STORAGE_BIN || path.join(root, 'bin', 'lectern-storage'),
};

function validate(dir) {
  return new Promise((resolve) => {
    execFile(process.execPath, [validator, '--root', dir], { env, cwd: here, timeout: 120000, maxBuffer: 16 << 20 },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
        // [{name, details}] of the failed checks.
        const failures = [];
        for (const line of stdout.split('\n')) {
          const m = /^not ok \d+ - (.*)$/.exec(line);
          if (m) failures.push({ name: m[1], details: [] });
          else if (failures.length && line.startsWith('  # ')) failures[failures.length - 1].details.push(line.slice(4));
        }
        resolve({ code, stdout, stderr, failures });
      });
  });
}

// A copy of the repository to break: docker/ and .dockerignore are real
// copies, the rest symlinks.
function brokenCopy(edits, files = {}) {
  const dir = mkdtempSync(path.join(tmpdir(), 'lectern-docker-'));
  for (const e of readdirSync(root)) {
    if (e === 'docker' || e === '.dockerignore' || e === '.git') continue;
    symlinkSync(path.join(root, e), path.join(dir, e));
  }
  cpSync(path.join(root, 'docker'), path.join(dir, 'docker'), { recursive: true });
  cpSync(path.join(root, '.dockerignore'), path.join(dir, '.dockerignore'));
  try {
    for (const [file, text] of Object.entries(files)) {
      mkdirSync(path.dirname(path.join(dir, file)), { recursive: true });
      writeFileSync(path.join(dir, file), text);
    }
    for (const [file, from, to] of edits) {
      const p = path.join(dir, file);
      const text = readFileSync(p, 'utf8');
      assert.ok(text.includes(from), `edit of ${file}: "${from}" not found (the deployment changed: update this test)`);
      writeFileSync(p, text.replace(from, to));
    }
  } catch (e) {
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }
  return dir;
}

function report(r) {
  return `validator exit ${r.code}\n${r.stdout}\n${r.stderr}`;
}

// Expect the validator to fail, with a failed check whose name matches each
// [nameRe, detailRe]; with `only`, no other check may fail.
async function expectFailures(edits, expected, { only = false } = {}) {
  const dir = brokenCopy(edits);
  try {
    const r = await validate(dir);
    assert.equal(r.code, 1, report(r));
    for (const [nameRe, detailRe] of expected) {
      const hit = r.failures.find((f) => nameRe.test(f.name) && (!detailRe || f.details.some((d) => detailRe.test(d))));
      assert.ok(hit, `expected a failed check ${nameRe}${detailRe ? ` with ${detailRe}` : ''}\n${report(r)}`);
    }
    if (only) {
      const extra = r.failures.filter((f) => !expected.some(([nameRe]) => nameRe.test(f.name)));
      assert.deepEqual(extra.map((f) => f.name), [], report(r));
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const COMPOSE = 'docker/compose.yaml';
const DOCKERFILE = 'docker/Dockerfile';
const SERVER_ENV_ANCHOR = '      LECTERN_AUTH_MODE: jwt\n';
const KEYS_ENV = '      LECTERN_AUTH_KEYS: /run/secrets/lectern-keys\n';
const HAPROXY = 'docker/haproxy.cfg';
const TLS_BIND = '    bind :443 ssl crt /run/secrets/lectern-tls alpn http/1.1 ssl-min-ver TLSv1.2\n';
const REDIRECT = '    http-request redirect location https://%[req.hdr(host),field(1,:)]%[capture.req.uri] code 301\n';
const HSTS = '    http-after-response set-header Strict-Transport-Security "max-age=31536000"\n';
const KEY_FILE = { 'docker/secrets/lectern-keys': 'k1 HS256 0123456789abcdef0123456789abcdef\n' };
const haveDpkg = existsSync('/usr/bin/dpkg') && existsSync('/usr/bin/ldd');

test('the deployment in docker/ passes every check', async () => {
  const r = await validate(root);
  assert.equal(r.failures.length, 0, report(r));
  assert.equal(r.code, 0, report(r));
  assert.match(r.stdout, /^# all checks passed$/m);
});

// The operator's key file in place (docker/README.md, "Keys"): --check-config
// then reads it instead of a stand-in.
test('with the operator\'s key file in docker/secrets/ the deployment passes every check, and no check notes it missing', async () => {
  const dir = brokenCopy([], KEY_FILE);
  try {
    const r = await validate(dir);
    assert.equal(r.failures.length, 0, report(r));
    assert.equal(r.code, 0, report(r));
    assert.doesNotMatch(r.stdout, /secrets\.lectern-keys: .* is the operator's/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('without it (a fresh checkout) the validator says compose will refuse to start', async () => {
  const r = await validate(root);
  assert.match(r.stdout, /secrets\.lectern-keys: \.\/secrets\/lectern-keys is the operator's \(not in the repository\); compose refuses to start until it exists/);
});

describe('the validator fails on a broken deployment', { concurrency: 4 }, () => {
  test('an unknown LECTERN_ variable and a missing mounted file', () => expectFailures([
    [COMPOSE, SERVER_ENV_ANCHOR, `${SERVER_ENV_ANCHOR}      LECTERN_REDIS_HOSTNAME: redis\n`],
    [COMPOSE, './haproxy.cfg:/usr/local/etc/haproxy/haproxy.cfg', './haproxy-missing.cfg:/usr/local/etc/haproxy/haproxy.cfg'],
  ], [
    [/service server: every LECTERN_\* variable/, /LECTERN_REDIS_HOSTNAME is not a knob of lectern-server/],
    [/every bind-mounted file/, /haproxy-missing\.cfg does not exist/],
    [/haproxy: its configuration is mounted/, /does not exist/],
  ], { only: true }));

  test('a knob value the program refuses (--check-config)', () => expectFailures([
    [COMPOSE, '      LECTERN_AMQP_PORT: "5672"\n', '      LECTERN_AMQP_PORT: "five"\n'],
  ], [
    [/service storage-worker: lectern-storage --check-config accepts/, /amqp\.port/],
  ]));

  test('a storage-worker variable that is only a server knob', () => expectFailures([
    [COMPOSE, '      LECTERN_AMQP_HOST: rabbitmq\n', '      LECTERN_AMQP_HOST: rabbitmq\n      LECTERN_BUS_HOST: rabbitmq\n'],
  ], [
    [/service storage-worker: every LECTERN_\* variable/, /LECTERN_BUS_HOST is not a knob of lectern-storage/],
  ], { only: true }));

  test('the server on another port than haproxy expects', () => expectFailures([
    [COMPOSE, SERVER_ENV_ANCHOR, `${SERVER_ENV_ANCHOR}      LECTERN_SERVER_PORT: "8301"\n`],
  ], [
    [/haproxy\.cfg: backend servers are compose services on server\.port \(8301\)/, /server:8300, but the server listens on 8301/],
  ], { only: true }));

  test('Prometheus scraping the server\'s public port, where /metrics is 404 (metrics.listen)', () => expectFailures([
    ['docker/prometheus/prometheus.yml', 'port: 9300', 'port: 8300'],
  ], [
    [/prometheus\.yml: dns_sd names/, /server port 8300, but the server serves \/metrics on 9300 \(metrics\.listen\)/],
  ], { only: true }));

  test('/metrics on the public port: no metrics.listen (Prometheus following it there)', () => expectFailures([
    [COMPOSE, '      LECTERN_METRICS_LISTEN: ":9300"\n', ''],
    ['docker/prometheus/prometheus.yml', 'port: 9300', 'port: 8300'],
  ], [
    [/server: \/metrics is not public/, /metrics\.listen is empty/],
  ], { only: true }));

  test('Prometheus scraping the worker on the wrong port', () => expectFailures([
    ['docker/prometheus/prometheus.yml', 'port: 8390', 'port: 8391'],
  ], [
    [/prometheus\.yml: dns_sd names/, /storage-worker port 8391, but the worker's http\.port is 8390/],
  ], { only: true }));

  test('a dashboard query on a metric the programs do not expose, and a datasource that is not provisioned', () => expectFailures([
    ['docker/grafana/dashboards/lectern.json', 'sum(rate(lectern_throttled_total[', 'sum(rate(lectern_throttled_requests_total['],
    ['docker/grafana/dashboards/lectern.json', '"uid": "lectern-prometheus"', '"uid": "other-prometheus"'],
  ], [
    [/every lectern_\* metric in its queries is exposed/, /lectern_throttled_requests_total is not exposed/],
    [/queries use a provisioned datasource uid/, /other-prometheus/],
    [/shows every metric the Operations issue asks for/, /lectern_throttled_total/],
  ]));

  test('a runtime image with a -dev package, no HEALTHCHECK, running as root', () => expectFailures([
    [DOCKERFILE, '      libmariadb3 libssl3 libinih1 libjansson4 \\\n', '      libmariadb3 libssl3 libinih1 libjansson4 libssl-dev \\\n'],
    [DOCKERFILE, 'HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \\\n  CMD curl -fsS --max-time 2 -o /dev/null "http://127.0.0.1:${LECTERN_SERVER_PORT:-8300}/healthz" || exit 1\n', ''],
    [DOCKERFILE, 'COPY config/lectern-storage.conf /etc/lectern/lectern-storage.conf\nUSER 10001:10001\n', 'COPY config/lectern-storage.conf /etc/lectern/lectern-storage.conf\nUSER root\n'],
  ], [
    [/target server \(server\): installs no -dev/, /installs libssl-dev/],
    [/target server \(server\): runs as a non-root USER/, /no HEALTHCHECK/],
    [/target storage-worker \(storage-worker\): runs as a non-root USER/, /USER root is root/],
    // server waits for storage-worker's health, which the image still has.
  ]));

  test('a runtime image without a library its program links', { skip: !haveDpkg && 'no ldd/dpkg here' }, () => expectFailures([
    [DOCKERFILE, 'librabbitmq4 libhiredis0.14 \\\n', 'librabbitmq4 \\\n'],
    [DOCKERFILE, '      libwebsockets17 libwebsockets-evlib-uv libuv1 librabbitmq4 \\\n      libmariadb3 libssl3 libinih1 \\\n',
      '      libwebsockets17 libuv1 librabbitmq4 \\\n      libmariadb3 libssl3 libinih1 \\\n'],
  ], [
    [/runtime images install the Debian package of every shared library/, /server: libhiredis\.so\.0\.14 is in libhiredis0\.14/],
    [/runtime images install the Debian package of every shared library/, /storage-worker: libwebsockets runs on libuv through a plugin/],
  ], { only: true }));

  test('a build target that is not a Dockerfile stage, and a build stage missing a -dev package of scripts/deps', () => expectFailures([
    [COMPOSE, '      target: storage-worker\n', '      target: storage\n'],
    [DOCKERFILE, '      libinih-dev libjansson-dev uthash-dev \\\n', '      libinih-dev libjansson-dev \\\n'],
  ], [
    [/service storage-worker: has an image or a build/, /target storage is not a stage/],
    [/build stage installs the build packages of scripts\/deps/, /uthash-dev/],
  ]));

  test('a build stage without the -dev package of a header, pkg-config module and library the build uses', { skip: !haveDpkg && 'no ldd/dpkg here' }, () => expectFailures([
    [DOCKERFILE, '      libinih-dev libjansson-dev uthash-dev \\\n', '      libjansson-dev uthash-dev \\\n'],
  ], [
    [/build stage installs the build packages of scripts\/deps/, /libinih-dev/],
    [/system header, pkg-config module and -l library/, /<ini\.h> is in libinih-dev/],
    [/system header, pkg-config module and -l library/, /-linih is in libinih-dev/],
  ], { only: true }));

  test('dependencies on services that do not exist', () => expectFailures([
    [COMPOSE, '  LECTERN_MYSQL_HOST: mariadb\n', '  LECTERN_MYSQL_HOST: mysql\n'],
    [COMPOSE, '    depends_on:\n      - prometheus\n', '    depends_on:\n      - prometheus\n      - loki\n'],
  ], [
    [/depends_on names existing services/, /grafana depends on loki, which is not a service/],
    [/service server: dependency hosts are compose services/, /LECTERN_MYSQL_HOST=mysql is not a compose service/],
    [/service storage-worker: dependency hosts are compose services/, /LECTERN_MYSQL_HOST=mysql is not a compose service/],
  ]));

  test('RabbitMQ credentials that differ from the ones Lectern uses', () => expectFailures([
    [COMPOSE, '      LECTERN_BUS_PASSWORD: ${RABBITMQ_PASSWORD:-lectern-demo}\n', '      LECTERN_BUS_PASSWORD: guest\n'],
  ], [
    [/service server: credentials match/, /LECTERN_BUS_PASSWORD differs from RABBITMQ_DEFAULT_PASS/],
  ], { only: true }));

  test('haproxy without DNS discovery, and trusted proxies that miss haproxy', () => expectFailures([
    ['docker/haproxy.cfg', '    server-template server 20 server:8300\n', '    server s1 server:8300\n'],
    [COMPOSE, '      LECTERN_LIMITS_TRUSTED_PROXIES: 172.29.0.10\n', '      LECTERN_LIMITS_TRUSTED_PROXIES: 10.0.0.0/8,bogus\n'],
  ], [
    [/haproxy\.cfg: the servers are found by DNS/, /no server-template/],
    [/trusted_proxies is valid and covers haproxy/, /"bogus" is not an address or CIDR/],
    [/trusted_proxies is valid and covers haproxy/, /haproxy's address 172\.29\.0\.10 is not in/],
  ]));

  test('haproxy.cfg that haproxy -c refuses', { skip: !existsSync('/usr/sbin/haproxy') && 'haproxy not installed' }, () => expectFailures([
    ['docker/haproxy.cfg', '    balance leastconn\n', '    balance leastconn\n    no-such-keyword on\n'],
  ], [
    [/haproxy -c accepts haproxy\.cfg/, /no-such-keyword/],
  ], { only: true }));

  test('a server that cannot be scaled: container_name and a host port', () => expectFailures([
    [COMPOSE, '      target: server\n', '      target: server\n    container_name: lectern-server\n    ports: ["8300:8300"]\n'],
  ], [
    [/server and storage-worker are scalable/, /container_name lectern-server prevents --scale/],
    [/server and storage-worker are scalable/, /publishes host ports/],
  ], { only: true }));

  test('Grafana provisioning that points at a directory not mounted, and a .dockerignore that drops the page', () => expectFailures([
    ['docker/grafana/provisioning/dashboards/lectern.yaml', 'path: /etc/grafana/dashboards', 'path: /var/lib/grafana/dashboards'],
    ['.dockerignore', 'tests/artifacts/\n', 'tests/artifacts/\nclient-js/\n'],
  ], [
    [/grafana: provisioning directories are mounted/, /options\.path \/var\/lib\/grafana\/dashboards is not a mounted directory/],
    [/\.dockerignore excludes build outputs/, /client-js\/public \(needed by the image build\) is excluded/],
  ]));

  test('servers without authentication: insecure-dev, and none (which the server itself refuses off loopback)', async () => {
    await expectFailures([
      [COMPOSE, SERVER_ENV_ANCHOR, '      LECTERN_AUTH_MODE: insecure-dev\n'],
    ], [
      [/server: compose requires keys/, /auth\.mode=insecure-dev: clients would connect as anyone/],
    ], { only: true });
    await expectFailures([
      [COMPOSE, SERVER_ENV_ANCHOR, '      LECTERN_AUTH_MODE: none\n'],
    ], [
      [/server: compose requires keys/, /auth\.mode=none: clients would connect as anyone/],
      [/service server: lectern-server --check-config accepts/, /auth\.mode=none lets anyone connect as anyone and is allowed only on loopback/],
    ], { only: true });
  });

  test('a key file kept with the deployment (a default key) and a missing key file elsewhere', () => expectFailures([
    [COMPOSE, '    file: ./secrets/lectern-keys', '    file: ./demo-keys'],
  ], [
    [/server: compose requires keys/, /the key file docker\/demo-keys is not under docker\/secrets\//],
    [/every bind-mounted file, env_file, config and secret file exists/, /secrets\.lectern-keys: file \.\/demo-keys does not exist/],
  ], { only: true }));

  test('a top-level name: (compose v1 rejects it) and Grafana outside its profile', () => expectFailures([
    [COMPOSE, '\nservices:\n', '\nname: lectern\n\nservices:\n'],
    [COMPOSE, '    profiles: [grafana]\n', ''],
  ], [
    [/valid for compose v1 and v2/, /top-level `name`: compose v1 rejects it \(name the project with -p\)/],
    [/valid for compose v1 and v2/, /grafana has no profile/],
  ], { only: true }));

  test('JWT with a key path that is not mounted', () => expectFailures([
    [COMPOSE, KEYS_ENV, '      LECTERN_AUTH_KEYS: /etc/lectern/keys\n'],
  ], [
    [/server: compose requires keys/, /LECTERN_AUTH_KEYS=\/etc\/lectern\/keys is neither a bind mount nor a secret/],
  ], { only: true }));

  test('a Redis without a password, and a server with another one', () => expectFailures([
    [COMPOSE, '    command: ["redis-server", "--requirepass", "${REDIS_PASSWORD:-lectern-demo}"]\n', ''],
  ], [
    [/service server: credentials match/, /redis: Redis runs without a password/],
  ]).then(() => expectFailures([
    [COMPOSE, '      LECTERN_REDIS_PASSWORD: ${REDIS_PASSWORD:-lectern-demo}\n', '      LECTERN_REDIS_PASSWORD: other\n'],
  ], [
    [/service server: credentials match/, /LECTERN_REDIS_PASSWORD differs from the --requirepass/],
  ], { only: true })));

  test('the public port without TLS, an unmounted certificate, ALPN h2, TLS 1.0 allowed, a cipher without forward secrecy', async () => {
    await expectFailures([
      [HAPROXY, TLS_BIND, '    bind :443\n'],
    ], [
      [/haproxy\.cfg: TLS on the public side/, /frontend lectern bind :443: no "ssl crt <file>": plain HTTP on the public side/],
      [/plain HTTP on the public side only redirects/, /frontend lectern serves plain HTTP to the public/],
    ], { only: true });
    await expectFailures([
      [HAPROXY, TLS_BIND, '    bind :443 ssl crt /etc/haproxy/certs/site.pem alpn h2,http/1.1 ssl-min-ver TLSv1.0\n'],
      [HAPROXY, 'ssl-default-bind-options ssl-min-ver TLSv1.2 no-tls-tickets', 'ssl-default-bind-options no-tls-tickets'],
      [HAPROXY, 'ssl-default-bind-ciphers ECDHE-ECDSA-AES128-GCM-SHA256:', 'ssl-default-bind-ciphers AES128-SHA:ECDHE-ECDSA-AES128-GCM-SHA256:'],
    ], [
      [/haproxy\.cfg: TLS on the public side/, /crt \/etc\/haproxy\/certs\/site\.pem is neither a bind mount nor a secret/],
      [/haproxy\.cfg: TLS on the public side/, /alpn offers h2/],
      [/haproxy\.cfg: TLS on the public side/, /no ssl-min-ver TLSv1\.2/],
      [/haproxy\.cfg: TLS on the public side/, /cipher AES128-SHA is not forward-secret AEAD/],
    ], { only: true });
  });

  test('plain HTTP that serves instead of redirecting, and a redirect that is not permanent', async () => {
    await expectFailures([
      [HAPROXY, REDIRECT, '    default_backend lectern_servers\n'],
    ], [
      [/plain HTTP on the public side only redirects/, /frontend lectern_redirect binds public port\(s\) 80 without TLS and does not redirect/],
      [/plain HTTP on the public side only redirects/, /frontend lectern_redirect serves plain HTTP to the public/],
      [/haproxy\.cfg: TLS on the public side/, /frontend lectern_redirect bind :80: no "ssl crt <file>"/],
    ]);
    await expectFailures([
      [HAPROXY, REDIRECT, REDIRECT.replace('code 301', 'code 302')],
    ], [
      [/plain HTTP on the public side only redirects/, /no public plain-HTTP frontend answers with/],
    ], { only: true });
  });

  test('no HSTS, and an HSTS max-age of five minutes', async () => {
    await expectFailures([
      [HAPROXY, HSTS, ''],
    ], [
      [/HSTS: every HTTPS answer/, /frontend lectern: no "http-after-response set-header Strict-Transport-Security"/],
    ], { only: true });
    await expectFailures([
      [HAPROXY, HSTS, HSTS.replace('max-age=31536000', 'max-age=300')],
    ], [
      [/HSTS: every HTTPS answer/, /HSTS max-age=300 is less than 180 days/],
    ], { only: true });
  });

  test('/metrics served on the public side, and the stats page there too', () => expectFailures([
    [HAPROXY, '    http-request deny deny_status 403 if private_path\n', ''],
    [HAPROXY, HSTS, `${HSTS}    stats enable\n    stats uri /haproxy-stats\n`],
  ], [
    [/\/metrics is refused \(403\) on the public side/, /frontend lectern: no "http-request deny deny_status 403" for \/metrics/],
    [/\/metrics is refused \(403\) on the public side/, /frontend lectern: stats page on a public port/],
  ], { only: true }));

  test('compose publishing neither 443 nor 80, and the stats port on every interface', () => expectFailures([
    [COMPOSE, '      - "${LECTERN_PUBLIC_PORT:-443}:443"', '      - "127.0.0.1:${LECTERN_PUBLIC_PORT:-443}:443"'],
    [COMPOSE, '      - "${LECTERN_HTTP_PORT:-80}:80"  # plain HTTP: 301 to HTTPS, nothing else\n', ''],
    [COMPOSE, '      - "127.0.0.1:${LECTERN_STATS_PORT:-8404}:8404"', '      - "${LECTERN_STATS_PORT:-8404}:8404"'],
  ], [
    [/haproxy\.cfg: TLS on the public side/, /no frontend binds a published port and forwards to the servers/],
    [/plain HTTP on the public side only redirects/, /compose does not publish port 80/],
    [/\/metrics is refused \(403\) on the public side/, /frontend stats \(stats\) on port 8404, published on every interface/],
  ]));

  test('a compose file that is not valid YAML', () => expectFailures([
    [COMPOSE, 'services:\n', 'services:\n  oops: [unclosed\n'],
  ], [
    [/docker\/compose\.yaml exists and parses as YAML/, null],
  ], { only: true }));
});
