// A single-page application using oidc-client-ts (global `oidc`, loaded by a plain <script>).
// Its configuration comes from /config.js, written by the test (Ostiary's port varies):
//   window.SPA_CONFIG = { issuer: "http://127.0.0.1:PORT", clientId: "..." }
// Every step reports into #status and #log, and window.spa exposes the steps to the test.
(function () {
  "use strict";
  const config = window.SPA_CONFIG;
  const origin = window.location.origin;
  const statusEl = () => document.getElementById("status");
  const log = (line) => {
    const el = document.getElementById("log");
    if (el) el.textContent += `${line}\n`;
  };
  const describe = (error) => {
    const parts = [error?.name, error?.message, error?.error, error?.error_description];
    return parts.filter(Boolean).join(": ");
  };

  oidc.Log.setLogger(console);
  oidc.Log.setLevel(oidc.Log.WARN);

  const manager = new oidc.UserManager({
    authority: config.issuer,
    client_id: config.clientId,
    redirect_uri: `${origin}/callback.html`,
    post_logout_redirect_uri: `${origin}/index.html`,
    response_type: "code",
    scope: "openid profile email offline_access",
    loadUserInfo: true,
    automaticSilentRenew: false,
    monitorSession: false,
    revokeTokenTypes: ["access_token", "refresh_token"],
    userStore: new oidc.WebStorageStateStore({ store: window.localStorage }),
  });

  function show(user) {
    const profile = document.getElementById("profile");
    if (!user) {
      statusEl().textContent = "signed-out";
      profile.textContent = "";
      return;
    }
    statusEl().textContent = "signed-in";
    profile.textContent = JSON.stringify(user.profile, null, 2);
    document.getElementById("sub").textContent = user.profile.sub;
    document.getElementById("email").textContent = user.profile.email ?? "";
  }

  async function run(name, step) {
    log(`${name}: start`);
    try {
      const result = await step();
      log(`${name}: ok`);
      return { ok: true, result: result ?? null };
    } catch (error) {
      log(`${name}: failed: ${describe(error)}`);
      return { ok: false, error: describe(error) };
    }
  }

  // Snapshots of the stored user for the test to compare (never shown in the page).
  async function tokens() {
    const user = await manager.getUser();
    if (!user) return null;
    return {
      access_token: user.access_token,
      refresh_token: user.refresh_token ?? null,
      id_token: user.id_token ?? null,
      expires_at: user.expires_at ?? null,
      scope: user.scope ?? null,
      profile: user.profile,
    };
  }

  window.spa = {
    manager,
    tokens,
    signIn: () => run("signin", () => manager.signinRedirect({ state: { from: "index" } })),
    callback: () =>
      run("callback", async () => {
        const user = await manager.signinRedirectCallback();
        show(user);
        return { sub: user.profile.sub, state: user.state };
      }),
    refresh: () =>
      run("refresh", async () => {
        const user = await manager.signinSilent();
        show(user);
        return user ? { sub: user.profile.sub } : null;
      }),
    revoke: () => run("revoke", () => manager.revokeTokens()),
    signOut: () => run("signout", () => manager.signoutRedirect({ state: { from: "signout" } })),
    signOutCallback: () => run("signout-callback", () => manager.signoutRedirectCallback()),
    load: async () => show(await manager.getUser()),
  };
  window.spa.ready = true;
})();
