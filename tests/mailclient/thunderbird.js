// Chrome-privileged helpers the mail-client test runs inside Thunderbird over
// Marionette. The driver (thunderbird_e2e.py) sends this file once; it defines
// window.tokenkitTest, and later scripts call its functions. Long operations
// (login, send, decrypt) start here, record their outcome in `state`, and
// the driver awaits them (settled, displayed); Thunderbird's own PIN dialog
// is answered inside Thunderbird the way a user would (answerPinDialogs).
const { MailServices } = ChromeUtils.importESModule("resource:///modules/MailServices.sys.mjs");

// answersLeft: how many PIN dialogs the current step may answer (allowPin).
const state = { pinDialogs: [], otherDialogs: [], log: [], answersLeft: 0 };

async function findToken(moduleName, tokenLabel) {
  const moduleDb = Cc["@mozilla.org/security/pkcs11moduledb;1"].getService(Ci.nsIPKCS11ModuleDB);
  const seen = [];
  for (const module of await moduleDb.listModules()) {
    for (const slot of module.slots) {
      let token = null;
      try {
        token = slot.getToken();
      } catch (e) {
        seen.push(`${module.name}/${slot.name}: no token`);
        continue;
      }
      seen.push(`${module.name}/${slot.name}: ${token.tokenName}`);
      // By token label: `tokenkit register` may name the module its own way.
      if (token.tokenName == tokenLabel) {
        return { token, seen, moduleName: module.name };
      }
    }
  }
  return { token: null, seen };
}

function identityFor(email) {
  for (const identity of MailServices.accounts.allIdentities) {
    if (identity.email == email) {
      return identity;
    }
  }
  return null;
}

// Thunderbird's PIN dialog, answered as a user would: NSS asks for a token's
// PIN through a common dialog (promptPassword) naming the token; when one
// opens for our token, type the PIN into its password field and press OK.
//
// Marionette watches the same dialogs: a script running when one opens
// returns null at once, and a command arriving while one is open makes
// Marionette dismiss it (a cancelled login). So the driver sends no command
// while a dialog is open: each dialog's opening and closing is counted in
// `markerPath` (a file outside Marionette), which the driver reads. The
// answer comes one task after the dialog loaded, after Marionette has seen
// it open (answering within the notification would close it before
// Marionette registers it, which then leaves Marionette a stale dialog).
function answerPinDialogs(pin, tokenLabel, markerPath) {
  const marker = { opened: 0, closed: 0 };
  const writeMarker = () => IOUtils.writeUTF8(markerPath, JSON.stringify(marker));
  const observer = {
    observe(subject) {
      const win = subject.document ? subject : subject.ownerGlobal;
      const doc = win?.document;
      const field = doc?.getElementById("password1Textbox");
      const text = doc?.getElementById("infoBody")?.textContent ?? "";
      marker.opened++;
      win.addEventListener("unload", () => {
        marker.closed++;
        writeMarker();
      });
      writeMarker();
      const dialog = doc.getElementById("commonDialog");
      if (!field || field.hidden || !text.includes(tokenLabel)) {
        state.otherDialogs.push(text);
        win.setTimeout(() => dialog.cancelDialog(), 0);
        return;
      }
      state.pinDialogs.push(text.replace(/\s+/g, " ").trim());
      if (state.answersLeft <= 0) {
        // NSS asks again after a wrong PIN: one try per step, so a wrong PIN
        // never locks the token (a PIV card locks after three).
        state.cancelledDialogs = (state.cancelledDialogs ?? 0) + 1;
        win.setTimeout(() => dialog.cancelDialog(), 0);
        return;
      }
      state.answersLeft--;
      win.setTimeout(() => {
        field.value = pin;
        dialog.acceptDialog();
      }, 0);
    },
  };
  Services.obs.addObserver(observer, "common-dialog-loaded");
  return writeMarker();
}

window.tokenkitTest = {
  state,

  async describe(moduleName, tokenLabel, email) {
    const { token, seen, moduleName: foundIn } = await findToken(moduleName, tokenLabel);
    const identity = identityFor(email);
    return {
      slots: seen,
      token: token ? { name: token.tokenName, module: foundIn, loggedIn: token.isLoggedIn } : null,
      identity: identity
        ? {
            key: identity.key,
            signingCertDbKey: identity.getUnicharAttribute("signing_cert_dbkey"),
            encryptionCertDbKey: identity.getUnicharAttribute("encryption_cert_dbkey"),
            smtpServerKey: identity.smtpServerKey,
          }
        : null,
    };
  },

  // The user's trust in their CA for email, set as Thunderbird's Certificate
  // Manager sets it (Authorities, Import, "trust this CA to identify email
  // users"): into the profile's NSS database with trust ",C,".
  trustCA(base64Der) {
    const certDb = Cc["@mozilla.org/security/x509certdb;1"].getService(Ci.nsIX509CertDB);
    const cert = certDb.addCertFromBase64(base64Der, ",C,");
    return {
      subject: cert.subjectName,
      trustedForEmail: certDb.isCertTrusted(
        cert,
        Ci.nsIX509Cert.CA_CERT,
        Ci.nsIX509CertDB.TRUSTED_EMAIL
      ),
    };
  },

  // The certificate Thunderbird would sign with, from the identity's pref,
  // and whether NSS verifies it for email signing in this profile.
  async signingCert(email) {
    const identity = identityFor(email);
    const dbKey = identity.getUnicharAttribute("signing_cert_dbkey");
    if (!dbKey) {
      return { error: "the identity has no signing_cert_dbkey" };
    }
    const certDb = Cc["@mozilla.org/security/x509certdb;1"].getService(Ci.nsIX509CertDB);
    const cert = certDb.findCertByDBKey(dbKey);
    if (!cert) {
      return { error: `no certificate for dbkey ${dbKey}` };
    }
    const verified = await new Promise(resolve => {
      certDb.asyncVerifyCertAtTime(
        cert,
        Ci.nsIX509CertDB.verifyUsageEmailSigner,
        0,
        email,
        Math.floor(Date.now() / 1000),
        [],
        { verifyCertFinished: (status, chain, ev) => resolve(status) }
      );
    });
    return {
      nickname: cert.displayName,
      tokenName: cert.tokenName,
      sha256: cert.sha256Fingerprint,
      verifyStatus: verified,
    };
  },

  // Starts the token login; NSS then asks for the PIN through Thunderbird's
  // password dialog (answered by answerPinDialog). Runs after this call returns.
  startLogin(moduleName, tokenLabel) {
    state.login = "running";
    setTimeout(async () => {
      try {
        const { token } = await findToken(moduleName, tokenLabel);
        if (!token) {
          state.login = "error: token not found";
          return;
        }
        token.login(false);
        state.login = token.isLoggedIn ? "ok" : "error: not logged in after login()";
      } catch (e) {
        state.login = `error: ${e}`;
      }
    }, 0);
  },

  answerPinDialogs,

  allowPin(n) {
    state.answersLeft = n;
  },

  // Resolves once state[key] has left "running" (or after ms). The driver
  // awaits this in one Marionette command instead of polling: a command that
  // arrives while a PIN dialog is open makes Marionette dismiss the dialog.
  settled(key, ms) {
    const deadline = Date.now() + ms;
    return new Promise(resolve => {
      const check = () => {
        if (state[key] != "running" || Date.now() > deadline) {
          resolve(state[key]);
        } else {
          setTimeout(check, 100);
        }
      };
      check();
    });
  },

  // Resolves with readDisplay() once the message pane shows `expected` (and,
  // if `signed`, the signature status is known), or after ms with what it
  // shows then.
  displayed(expected, signed, ms) {
    const deadline = Date.now() + ms;
    return new Promise(resolve => {
      const check = () => {
        const shown = this.readDisplay();
        const done =
          shown.loaded &&
          shown.text.includes(expected) &&
          (!signed || (shown.signatureStatus ?? -1) != -1);
        if (
          done ||
          state.decrypt?.startsWith("error") ||
          Date.now() > deadline
        ) {
          resolve(shown);
        } else {
          setTimeout(check, 200);
        }
      };
      check();
    });
  },

  // Sends a signed message through Thunderbird's own compose/send code: the
  // compose fields carry an nsIMsgComposeSecure with signMessage, as the
  // compose window sets it; nsIMsgSend delivers to the identity's SMTP server.
  startSend(email, to, subject, body) {
    state.send = "running";
    const identity = identityFor(email);
    const fields = Cc["@mozilla.org/messengercompose/composefields;1"].createInstance(
      Ci.nsIMsgCompFields
    );
    fields.from = `Alice <${email}>`;
    fields.to = to;
    fields.subject = subject;
    const secure = Cc["@mozilla.org/messengercompose/composesecure;1"].createInstance(
      Ci.nsIMsgComposeSecure
    );
    secure.signMessage = true;
    secure.requireEncryptMessage = false;
    fields.composeSecure = secure;
    const send = Cc["@mozilla.org/messengercompose/send;1"].createInstance(Ci.nsIMsgSend);
    const listener = {
      QueryInterface: ChromeUtils.generateQI(["nsIMsgSendListener"]),
      onStartSending() {},
      onProgress() {},
      onStatus(msgId, text) {
        state.log.push(`status: ${text}`);
      },
      onStopSending(msgId, status, msg) {
        state.send = status == 0 ? "ok" : `error: 0x${(status >>> 0).toString(16)} ${msg ?? ""}`;
      },
      onGetDraftFolderURI() {},
      onSendNotPerformed(msgId, status) {
        state.send = `error: not performed 0x${(status >>> 0).toString(16)}`;
      },
      onTransportSecurityError() {
        state.send = "error: transport security";
      },
    };
    setTimeout(() => {
      send
        .createAndSendMessage(
          null,
          identity,
          "",
          fields,
          false,
          false,
          Ci.nsIMsgSend.nsMsgDeliverNow,
          null,
          "text/plain",
          body,
          null,
          null,
          listener,
          null,
          "",
          Ci.nsIMsgCompType.New
        )
        .catch(e => {
          state.send = `error: ${e}`;
        });
    }, 0);
  },

  // Adds a message (mbox text) to a folder of Local Folders and opens it in a
  // message tab, as a user double-clicking it would: Thunderbird's message
  // display decrypts S/MIME (libmime + NSS, on the token). readDisplay()
  // then returns what the message pane shows.
  startDecrypt(folderName, mboxText) {
    state.decrypt = "running";
    setTimeout(() => {
      try {
        const root = MailServices.accounts.localFoldersServer.rootFolder;
        let folder = root.getChildNamed(folderName);
        if (!folder) {
          root.createSubfolder(folderName, null);
          folder = root.getChildNamed(folderName);
        }
        const header = folder.QueryInterface(Ci.nsIMsgLocalMailFolder).addMessage(mboxText);
        state.decryptSubject = header.mime2DecodedSubject;
        const tabmail = document.getElementById("tabmail");
        state.decryptTab = tabmail.openTab("mailMessageTab", {
          messageURI: folder.getUriForMsg(header),
          background: false,
        });
        state.decrypt = "displayed";
      } catch (e) {
        state.decrypt = `error: ${e}`;
      }
    }, 0);
  },

  readDisplay() {
    const tab = state.decryptTab;
    const aboutMessage = tab?.chromeBrowser?.contentWindow;
    const pane = aboutMessage?.getMessagePaneBrowser?.();
    const doc = pane?.contentDocument;
    return {
      loaded: doc?.readyState == "complete" && !!doc?.body,
      uri: pane?.currentURI?.spec ?? null,
      text: doc?.body?.textContent ?? "",
      encryptionStatus: aboutMessage?.gEncryptionStatus ?? null,
      signatureStatus: aboutMessage?.gSignatureStatus ?? null,
    };
  },

  closeDecryptTab() {
    if (state.decryptTab) {
      document.getElementById("tabmail").closeTab(state.decryptTab);
      state.decryptTab = null;
    }
  },
};
return "loaded";
