"""A small SMTP sink on 127.0.0.1 for the mail-client test (asyncio, no smtpd).

It takes every message (EHLO/HELO, MAIL, RCPT, DATA with dot-unstuffing,
RSET, NOOP, QUIT; no AUTH, no TLS) and keeps its bytes exactly as they were
sent, CRLF line ends included, so signatures can be checked afterwards.
"""

import asyncio
import threading


class Message:
    def __init__(self, sender, recipients, data):
        self.sender = sender
        self.recipients = recipients
        self.data = data


class SmtpSink:
    def __init__(self, host="127.0.0.1", port=0):
        self.host = host
        self.messages = []
        self.transcript = []
        self._arrived = threading.Condition()
        self._loop = asyncio.new_event_loop()
        self._server = self._loop.run_until_complete(
            asyncio.start_server(self._session, host, port)
        )
        self.port = self._server.sockets[0].getsockname()[1]
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()

    def wait_for_message(self, timeout):
        with self._arrived:
            self._arrived.wait_for(lambda: self.messages, timeout)
            return self.messages[0] if self.messages else None

    def close(self):
        def stop():
            self._server.close()
            self._loop.stop()

        self._loop.call_soon_threadsafe(stop)
        self._thread.join(10)

    async def _session(self, reader, writer):
        def reply(line):
            self.transcript.append("S: " + line)
            writer.write(line.encode() + b"\r\n")

        reply("220 tokenkit-test-sink ESMTP")
        sender, recipients = None, []
        try:
            while True:
                raw = await reader.readline()
                if not raw:
                    break
                line = raw.decode("utf-8", "replace").rstrip("\r\n")
                self.transcript.append("C: " + line)
                verb = line.split(" ", 1)[0].upper()
                if verb == "EHLO":
                    reply("250-tokenkit-test-sink")
                    reply("250-8BITMIME")
                    reply("250 SIZE 10485760")
                elif verb == "HELO":
                    reply("250 tokenkit-test-sink")
                elif verb == "MAIL":
                    sender, recipients = line[10:].strip(), []
                    reply("250 OK")
                elif verb == "RCPT":
                    if sender is None:
                        reply("503 MAIL first")
                    else:
                        recipients.append(line[8:].strip())
                        reply("250 OK")
                elif verb == "DATA":
                    if not recipients:
                        reply("503 RCPT first")
                        continue
                    reply("354 end with <CRLF>.<CRLF>")
                    data = bytearray()
                    while True:
                        chunk = await reader.readline()
                        if not chunk:
                            return
                        if chunk in (b".\r\n", b".\n"):
                            break
                        if chunk.startswith(b"."):
                            chunk = chunk[1:]
                        data += chunk
                    with self._arrived:
                        self.messages.append(Message(sender, recipients, bytes(data)))
                        self._arrived.notify_all()
                    sender, recipients = None, []
                    reply("250 OK queued")
                elif verb == "RSET":
                    sender, recipients = None, []
                    reply("250 OK")
                elif verb == "NOOP":
                    reply("250 OK")
                elif verb == "QUIT":
                    reply("221 bye")
                    await writer.drain()
                    break
                else:
                    reply("502 command not implemented")
                await writer.drain()
        finally:
            writer.close()
