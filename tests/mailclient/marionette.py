"""A minimal client for Gecko's Marionette remote protocol (Thunderbird, Firefox).

Debian ships no marionette_driver, so this speaks the wire protocol itself:
every packet is `<byte length>:<JSON>`; the server greets with
{"applicationType": ..., "marionetteProtocol": 3}; a command is
[0, id, name, params] and its response [1, id, error, result].
Only what the mail-client test needs: a session, the chrome context, scripts.
"""

import json
import socket
import time


class MarionetteError(Exception):
    """The server answered a command with an error object."""

    def __init__(self, command, error):
        self.command = command
        self.error = error
        message = error.get("message", "") if isinstance(error, dict) else str(error)
        kind = error.get("error", "error") if isinstance(error, dict) else "error"
        stack = error.get("stacktrace", "") if isinstance(error, dict) else ""
        super().__init__(f"{command}: {kind}: {message}\n{stack}".rstrip())


class Marionette:
    def __init__(self, host, port, connect_timeout=60.0, alive=None):
        """Connect, retrying until the server listens or connect_timeout passes.

        alive: optional callable returning False once the application has
        exited, so a crash stops the wait at once instead of timing out."""
        deadline = time.monotonic() + connect_timeout
        last = None
        while True:
            if alive is not None and not alive():
                raise ConnectionError("the application exited before Marionette listened")
            try:
                self.sock = socket.create_connection((host, port), timeout=5)
                break
            except OSError as e:
                last = e
                if time.monotonic() > deadline:
                    raise ConnectionError(
                        f"no Marionette server on {host}:{port} after {connect_timeout:.0f} s: {last}"
                    ) from e
                time.sleep(0.25)
        self.sock.settimeout(None)
        self.buffer = b""
        self.next_id = 0
        self.hello = self._receive()
        if self.hello.get("marionetteProtocol") != 3:
            raise ConnectionError(f"unexpected Marionette greeting: {self.hello}")

    def _read_exactly(self, n):
        while len(self.buffer) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("Marionette connection closed")
            self.buffer += chunk
        data, self.buffer = self.buffer[:n], self.buffer[n:]
        return data

    def _receive(self):
        while b":" not in self.buffer:
            if len(self.buffer) > 20:
                raise ConnectionError(f"malformed Marionette packet: {self.buffer[:40]!r}")
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("Marionette connection closed")
            self.buffer += chunk
        length, self.buffer = self.buffer.split(b":", 1)
        return json.loads(self._read_exactly(int(length)))

    def command(self, name, params=None):
        self.next_id += 1
        msg_id = self.next_id
        data = json.dumps([0, msg_id, name, params or {}]).encode()
        self.sock.sendall(str(len(data)).encode() + b":" + data)
        while True:
            packet = self._receive()
            if isinstance(packet, list) and len(packet) == 4 and packet[0] == 1 and packet[1] == msg_id:
                if packet[2]:
                    raise MarionetteError(name, packet[2])
                return packet[3]
            # Anything else (a late answer to an earlier id) is dropped.

    def new_session(self):
        # Note: a command that arrives while an application dialog is open
        # makes Marionette dismiss it (its default prompt handler), and a
        # script running when one opens returns null at once.
        return self.command("WebDriver:NewSession", {"capabilities": {"alwaysMatch": {}}})

    def set_context(self, context):
        self.command("Marionette:SetContext", {"value": context})

    def set_script_timeout(self, seconds):
        self.command("WebDriver:SetTimeouts", {"script": int(seconds * 1000)})

    def execute(self, script, args=None):
        """Run script as a function body; a returned Promise is awaited."""
        result = self.command("WebDriver:ExecuteScript", {"script": script, "args": args or []})
        return result.get("value") if isinstance(result, dict) else result

    def quit(self):
        try:
            self.command("Marionette:Quit", {"flags": ["eForceQuit"]})
        except (ConnectionError, MarionetteError, OSError):
            pass
        self.close()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass
