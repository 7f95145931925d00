// Passkey ceremonies of Ostiary's pages (WebAuthn Level 3, sections 5.1.3 and 5.1.4).
//
// Loaded with <script src="/static/webauthn.js" defer> (the pages' CSP allows scripts from our
// origin only, no inline script). Each ceremony is an element with data-passkey="register" |
// "sign-in" | "second-step", its CSRF token, the URLs of its two JSON calls and, for a sign-in,
// where to go next. The server makes and checks the challenge (a signed cookie); this script
// only carries the options to the browser and the browser's answer back.
(function () {
  "use strict";

  var GENERIC = "Something went wrong with the passkey. Try again.";

  function toBuffer(value) {
    var text = value.replace(/-/g, "+").replace(/_/g, "/");
    while (text.length % 4) text += "=";
    var binary = atob(text);
    var bytes = new Uint8Array(binary.length);
    for (var i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
    return bytes.buffer;
  }

  function toBase64url(buffer) {
    if (!buffer) return undefined;
    var bytes = new Uint8Array(buffer);
    var binary = "";
    for (var i = 0; i < bytes.length; i++) binary += String.fromCharCode(bytes[i]);
    return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function descriptors(list) {
    return (list || []).map(function (d) {
      return { type: d.type, id: toBuffer(d.id), transports: d.transports };
    });
  }

  // PublicKeyCredential.parse*OptionsFromJSON where the browser has them (WebAuthn Level 3),
  // else the same conversion by hand.
  function creationOptions(json) {
    if (typeof PublicKeyCredential.parseCreationOptionsFromJSON === "function") {
      return PublicKeyCredential.parseCreationOptionsFromJSON(json);
    }
    var options = Object.assign({}, json);
    options.challenge = toBuffer(json.challenge);
    options.user = Object.assign({}, json.user, { id: toBuffer(json.user.id) });
    options.excludeCredentials = descriptors(json.excludeCredentials);
    return options;
  }

  function requestOptions(json) {
    if (typeof PublicKeyCredential.parseRequestOptionsFromJSON === "function") {
      return PublicKeyCredential.parseRequestOptionsFromJSON(json);
    }
    var options = Object.assign({}, json);
    options.challenge = toBuffer(json.challenge);
    options.allowCredentials = descriptors(json.allowCredentials);
    return options;
  }

  function credentialJSON(credential) {
    if (typeof credential.toJSON === "function") return credential.toJSON();
    var r = credential.response;
    var response = { clientDataJSON: toBase64url(r.clientDataJSON) };
    if (r.attestationObject) {
      response.attestationObject = toBase64url(r.attestationObject);
      response.transports = typeof r.getTransports === "function" ? r.getTransports() : [];
    } else {
      response.authenticatorData = toBase64url(r.authenticatorData);
      response.signature = toBase64url(r.signature);
      if (r.userHandle) response.userHandle = toBase64url(r.userHandle);
    }
    return {
      id: credential.id,
      rawId: toBase64url(credential.rawId),
      type: credential.type,
      authenticatorAttachment: credential.authenticatorAttachment || undefined,
      clientExtensionResults: credential.getClientExtensionResults(),
      response: response,
    };
  }

  function post(root, url, body) {
    return fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": root.dataset.csrf },
      body: JSON.stringify(body),
    }).then(function (response) {
      return response.json().catch(function () { return {}; }).then(function (data) {
        if (!response.ok) {
          if (data.redirect) {
            window.location.assign(data.redirect);
          }
          throw new Error(data.error_description || GENERIC);
        }
        return data;
      });
    });
  }

  function showError(root, message) {
    var box = root.querySelector("[data-passkey-error]");
    if (box) {
      box.textContent = message;
      box.hidden = false;
    }
  }

  function clearError(root) {
    var box = root.querySelector("[data-passkey-error]");
    if (box) box.hidden = true;
  }

  function cancelled(error) {
    // The user closed the browser's dialog, or a newer ceremony replaced this one.
    return error && (error.name === "NotAllowedError" || error.name === "AbortError");
  }

  function go(data) {
    window.location.assign(data.redirect || "/account");
  }

  // -- adding a passkey on /account/security --------------------------------------------------

  function register(root) {
    var name = document.getElementById("passkey-name");
    clearError(root);
    return post(root, root.dataset.optionsUrl, {})
      .then(function (data) {
        return navigator.credentials.create({ publicKey: creationOptions(data.publicKey) });
      })
      .then(function (credential) {
        return post(root, root.dataset.verifyUrl, {
          name: name ? name.value : "Passkey",
          credential: credentialJSON(credential),
        });
      })
      .then(function (data) {
        var codes = data.recovery_codes || [];
        if (!codes.length) return go(data);
        var list = root.querySelector("[data-passkey-codes]");
        codes.forEach(function (code) {
          var item = document.createElement("li");
          var text = document.createElement("code");
          text.textContent = code;
          item.appendChild(text);
          list.appendChild(item);
        });
        root.querySelector("#passkey-codes").hidden = false;
        root.querySelector("[data-passkey-start]").disabled = true;
      })
      .catch(function (error) {
        showError(root, cancelled(error) ? "No passkey was added." : error.message || GENERIC);
      });
  }

  // -- signing in: passwordless on /login, or the second step ---------------------------------

  var pending = null; // the conditional (autofill) request, aborted by an explicit one

  function signIn(root, conditional) {
    if (pending) {
      pending.abort();
      pending = null;
    }
    var controller = new AbortController();
    if (conditional) pending = controller;
    clearError(root);
    return post(root, root.dataset.optionsUrl, {})
      .then(function (data) {
        var request = { publicKey: requestOptions(data.publicKey), signal: controller.signal };
        if (conditional) request.mediation = "conditional";
        return navigator.credentials.get(request);
      })
      .then(function (credential) {
        return post(root, root.dataset.verifyUrl, {
          credential: credentialJSON(credential),
          next: root.dataset.next || "/account",
        });
      })
      .then(go)
      .catch(function (error) {
        if (conditional && cancelled(error)) return;
        showError(root, cancelled(error) ? "The passkey was not used." : error.message || GENERIC);
      });
  }

  function start() {
    var roots = document.querySelectorAll("[data-passkey]");
    if (!roots.length) return;
    var supported = typeof window.PublicKeyCredential === "function" && navigator.credentials;
    Array.prototype.forEach.call(roots, function (root) {
      var button = root.querySelector("[data-passkey-start]");
      if (!supported) {
        if (button) button.disabled = true;
        showError(root, "This browser cannot use passkeys.");
        return;
      }
      var kind = root.dataset.passkey;
      if (button) {
        button.addEventListener("click", function () {
          if (kind === "register") register(root);
          else signIn(root, false);
        });
      }
      if (kind === "sign-in" &&
          typeof PublicKeyCredential.isConditionalMediationAvailable === "function") {
        // Conditional UI: the browser offers passkeys in the e-mail field's autofill
        // (autocomplete="username webauthn").
        PublicKeyCredential.isConditionalMediationAvailable().then(function (available) {
          if (available) signIn(root, true);
        });
      }
    });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
