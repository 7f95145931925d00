// The relying-party half of an authorization code flow, done by the npm `openid-client`
// library (v6, an independent certified implementation), against a running Ostiary.
//
//   node openid_client_flow.mjs ISSUER CLIENT_ID CLIENT_SECRET REDIRECT_URI POST_LOGOUT_URI
//
// Protocol with the driving test, one JSON object per line on stdout:
//   1. {"step": "authorize", "url": ..., "state": ..., "nonce": ...}
//   2. reads the callback URL (redirect URI with code, state, iss) as one line on stdin;
//   3. {"step": "done", ...}: the token responses, ID token claims, userinfo, introspection
//      and revocation results. On any error: {"step": "error", ...} and exit status 1.
import { createInterface } from "node:readline";

import * as client from "openid-client";

const emit = (value) => process.stdout.write(`${JSON.stringify(value)}\n`);

function describe(error) {
  const found = { step: "error", name: error?.name, message: String(error?.message ?? error) };
  for (const key of ["code", "error", "error_description", "status"]) {
    if (error?.[key] !== undefined) found[key] = error[key];
  }
  if (error?.cause !== undefined) {
    try {
      found.cause = JSON.parse(JSON.stringify(error.cause));
    } catch {
      found.cause = String(error.cause);
    }
  }
  return found;
}

async function readLine() {
  const lines = createInterface({ input: process.stdin });
  for await (const line of lines) {
    lines.close();
    return line.trim();
  }
  throw new Error("no callback URL on standard input");
}

async function main() {
  const [issuer, clientId, clientSecret, redirectUri, postLogoutUri] = process.argv.slice(2);
  if (!postLogoutUri) {
    throw new Error("usage: ISSUER CLIENT_ID CLIENT_SECRET REDIRECT_URI POST_LOGOUT_URI");
  }

  // v6 refuses http:// issuers unless told otherwise (the test server is plain HTTP on loopback).
  const config = await client.discovery(
    new URL(issuer),
    clientId,
    undefined,
    client.ClientSecretBasic(clientSecret),
    { execute: [client.allowInsecureRequests] },
  );
  const metadata = config.serverMetadata();

  const verifier = client.randomPKCECodeVerifier();
  const challenge = await client.calculatePKCECodeChallenge(verifier);
  const state = client.randomState();
  const nonce = client.randomNonce();
  const url = client.buildAuthorizationUrl(config, {
    redirect_uri: redirectUri,
    scope: "openid profile email offline_access",
    code_challenge: challenge,
    code_challenge_method: "S256",
    state,
    nonce,
  });
  emit({ step: "authorize", url: url.href, state, nonce, issuer: metadata.issuer });

  const callback = new URL(await readLine());
  // Checks state, nonce, PKCE, the RFC 9207 `iss` parameter and the ID token's claims.
  const tokens = await client.authorizationCodeGrant(config, callback, {
    pkceCodeVerifier: verifier,
    expectedState: state,
    expectedNonce: nonce,
    idTokenExpected: true,
  });
  const claims = tokens.claims();

  const refreshed = await client.refreshTokenGrant(config, tokens.refresh_token);
  const refreshedClaims = refreshed.claims();
  const userinfo = await client.fetchUserInfo(config, refreshed.access_token, claims.sub);

  const introspection = await client.tokenIntrospection(config, refreshed.access_token);
  await client.tokenRevocation(config, refreshed.refresh_token, {
    token_type_hint: "refresh_token",
  });
  const afterRevocation = await client.tokenIntrospection(config, refreshed.refresh_token);
  const endSession = client.buildEndSessionUrl(config, {
    id_token_hint: refreshed.id_token,
    post_logout_redirect_uri: postLogoutUri,
  });

  emit({
    step: "done",
    tokens: {
      access_token: tokens.access_token,
      refresh_token: tokens.refresh_token,
      id_token: tokens.id_token,
      token_type: tokens.token_type,
      expires_in: tokens.expiresIn(),
      scope: tokens.scope,
    },
    claims,
    refreshed: {
      access_token: refreshed.access_token,
      refresh_token: refreshed.refresh_token,
      id_token: refreshed.id_token,
      expires_in: refreshed.expiresIn(),
      scope: refreshed.scope,
    },
    refreshed_claims: refreshedClaims,
    userinfo,
    introspection,
    after_revocation: afterRevocation,
    end_session_url: endSession.href,
  });
}

try {
  await main();
} catch (error) {
  emit(describe(error));
  process.exitCode = 1;
}
