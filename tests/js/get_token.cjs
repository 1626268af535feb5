// Get access tokens with the real @azure/identity, configured only by the environment, as an
// app would be. Used by tests/test_js_clients.py; NODE_PATH points at build/js/node_modules.
//
//   node get_token.cjs CREDENTIAL SCOPE...
//
// CREDENTIAL: managed-identity | default | workload-identity | workload-identity-with-discovery.
// Prints one JSON line: {"tokens": [{"claims": {...}, "expiresOnTimestamp": N}, ...]} (the
// claims only, never a token), or {"error": {"name": ..., "message": ...}} and exits 1.
"use strict";

const identity = require("@azure/identity");

function credentialFor(kind) {
  switch (kind) {
    case "managed-identity":
      return new identity.ManagedIdentityCredential();
    case "default":
      return new identity.DefaultAzureCredential();
    case "workload-identity":
      // msal-node asks login.microsoftonline.com about authority hosts it does not know.
      return new identity.WorkloadIdentityCredential({ disableInstanceDiscovery: true });
    case "workload-identity-with-discovery":
      return new identity.WorkloadIdentityCredential();
    default:
      throw new Error(`unknown credential ${kind}`);
  }
}

function claimsOf(token) {
  return JSON.parse(Buffer.from(token.split(".")[1], "base64url").toString("utf8"));
}

async function main() {
  const [kind, ...scopes] = process.argv.slice(2);
  const credential = credentialFor(kind);
  const tokens = [];
  for (const scope of scopes) {
    const token = await credential.getToken(scope);
    tokens.push({ claims: claimsOf(token.token), expiresOnTimestamp: token.expiresOnTimestamp });
  }
  process.stdout.write(JSON.stringify({ tokens }) + "\n");
}

main().catch((error) => {
  process.stdout.write(JSON.stringify({ error: { name: error.name, message: error.message } }) + "\n");
  process.exitCode = 1;
});
