// An Express app signing users in with openid-client's Passport strategy
// (`openid-client/passport`), written as openid-client's examples/passport.ts shows for any
// OpenID provider: client.discovery(server, clientId, clientSecret), express-session,
// passport.authenticate('session'), new Strategy({ config, scope }, verify), GET /login with
// passport.authenticate(server.host), GET /logout ending the provider session with
// client.buildEndSessionUrl(config, { post_logout_redirect_uri }).
//
// Three additions, each needed here and each a documented option:
//   - allowInsecureRequests: v6 refuses http:// issuers, and the test server is plain HTTP;
//   - callbackURL: without it the strategy sends no redirect_uri at /authorize, which
//     OpenID Connect Core 3.1.2.1 requires (it still sends one at /token);
//   - successReturnToOrRedirect (Passport): the example's /login route has nothing after
//     the strategy, so a successful callback would end in a 404.
//
//   node passport_app.mjs
//
// Protocol with the driving test (tests/e2e/rp_apps.py AppProcess), JSON lines:
//   1. {"port": N} once listening on 127.0.0.1 (port chosen by the OS);
//   2. reads {"RP_ISSUER", "RP_CLIENT_ID", "RP_CLIENT_SECRET"} on stdin;
//   3. {"ready": true} once discovery is done and the routes are mounted.
import { randomBytes } from "node:crypto";
import { createInterface } from "node:readline";

import connectEnsureLogin from "connect-ensure-login";
import cookieParser from "cookie-parser";
import express from "express";
import session from "express-session";
import * as client from "openid-client";
import { Strategy } from "openid-client/passport";
import passport from "passport";

const { ensureLoggedIn, ensureLoggedOut } = connectEnsureLogin;
const emit = (value) => process.stdout.write(`${JSON.stringify(value)}\n`);

async function readLine() {
  const lines = createInterface({ input: process.stdin });
  for await (const line of lines) {
    lines.close();
    return line.trim();
  }
  throw new Error("no configuration on standard input");
}

const app = express();
const listener = app.listen(0, "127.0.0.1", () => emit({ port: listener.address().port }));
await new Promise((resolve) => listener.once("listening", resolve));

const settings = JSON.parse(await readLine());
const server = new URL(settings.RP_ISSUER);
const origin = `http://127.0.0.1:${listener.address().port}`;

const config = await client.discovery(
  server,
  settings.RP_CLIENT_ID,
  settings.RP_CLIENT_SECRET,
  undefined,
  { execute: [client.allowInsecureRequests] },
);

app.use(cookieParser());
app.use(
  session({
    saveUninitialized: false,
    resave: true,
    secret: randomBytes(32).toString("hex"),
  }),
);
app.use(passport.authenticate("session"));

const verify = (tokens, verified) => {
  verified(null, tokens.claims());
};
passport.use(new Strategy({ config, scope: "openid email", callbackURL: `${origin}/login` }, verify));
passport.serializeUser((user, cb) => cb(null, user));
passport.deserializeUser((user, cb) => cb(null, user));

const escape = (text) => String(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

app.get("/", ensureLoggedIn("/login"), (req, res) => {
  res.send(`<p id="welcome">Welcome <span id="email">${escape(req.user?.email || req.user?.sub)}</span></p>`);
});

app.get(
  "/login",
  ensureLoggedOut("/logout"),
  passport.authenticate(server.host, { successReturnToOrRedirect: "/" }),
);

app.get("/logout", (req, res) => {
  req.logout(() => {
    res.redirect(
      client.buildEndSessionUrl(config, {
        post_logout_redirect_uri: `${req.protocol}://${req.host}`,
      }).href,
    );
  });
});

// Errors (a refused token request, a bad ID token) as text the test can show.
app.use((err, req, res, _next) => {
  process.stderr.write(`${err?.stack ?? err}\n${JSON.stringify(err?.cause ?? null)}\n`);
  res.status(500).send(`<pre id="rp-error">${escape(err?.message ?? err)}</pre>`);
});

emit({ ready: true });
