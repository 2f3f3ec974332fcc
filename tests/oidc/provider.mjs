// A real OpenID Connect provider on loopback for the single sign-on tests: the npm
// `oidc-provider` package (installed by contracts/package.json), with test clients and users
// read from a JSON file named by the first argument:
//   {"issuer": "http://127.0.0.1:PORT", "port": PORT,
//    "clients": [{"client_id", "client_secret", "redirect_uris": [...]}],
//    "users": {"login": {"groups": [...], "preferred_username": "..."}}}
// Its login page is the package's development one (any password); every client is
// first-party, so no consent page. It prints "ready" once listening.
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const { default: Provider } = await import(pathToFileURL(
  join(root, 'contracts', 'node_modules', 'oidc-provider', 'lib', 'index.js')).href);

const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));

const provider = new Provider(config.issuer, {
  clients: config.clients.map((client) => ({
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
    ...client,
  })),
  claims: {
    openid: ['sub'],
    profile: ['preferred_username', 'name'],
    groups: ['groups'],
  },
  scopes: ['openid', 'profile', 'groups'],
  // Groups go in the ID token itself, where the relying party reads them.
  conformIdTokenClaims: false,
  pkce: { required: () => true },
  cookies: { keys: ['kitledger-test-provider-cookies'] },
  async findAccount(ctx, id) {
    const user = config.users[id] ?? {};
    return {
      accountId: id,
      async claims() {
        return { sub: id, preferred_username: user.preferred_username ?? id,
          groups: user.groups ?? [] };
      },
    };
  },
  async loadExistingGrant(ctx) {
    const grant = new ctx.oidc.provider.Grant({
      clientId: ctx.oidc.client.clientId, accountId: ctx.oidc.session.accountId,
    });
    grant.addOIDCScope('openid profile groups');
    grant.addOIDCClaims(['preferred_username', 'name', 'groups']);
    await grant.save();
    return grant;
  },
});

provider.listen(config.port, '127.0.0.1', () => {
  process.stdout.write('ready\n');
});
