#!/usr/bin/env python3
"""ecfleet's WinRM test endpoint: a WS-Management WinRS service on loopback that stands in for
a Windows host's WinRM service in tests (docs/winrm.md). Real: HTTP/1.1 with connection-bound
authentication (NTLM or SPNEGO-wrapped NTLM accepted by pyspnego, against NTLM_USER_FILE),
MS-WSMV message encryption (multipart/encrypted), Basic over TLS, the WinRS operations and
their faults. Stands in: Windows itself -- commands run with /bin/sh -c.

Usage: endpoint.py --users FILE [--port 0] [--tls-cert C --tls-key K [--require-cbt]]
                   [--max-envelope-kb 150] [--allow-unencrypted] [--max-shells N]
                   [--no-egress] [--forge plain-500|no-relates-to]
                   [--keytab K [--refuse-ntlm]] [--auth-log FILE]
--keytab: also accept Kerberos (through Negotiate, with its message encryption) for the
service principals in keytab K; needs python-gssapi (Debian's python3-gssapi) and KRB5_CONFIG
naming the realm's KDC. --refuse-ntlm: a hardened host, NTLM refused (HTTP 401).
--auth-log: one line per completed authentication: the protocol and the client's principal.
--require-cbt: NTLM and Kerberos over TLS must carry the tls-server-end-point channel binding
of C (as Windows with CbtHardeningLevel=Strict); pyspnego checks NTLM's, MIT's GSS-API
Kerberos'.
Prints "listening on PORT" once it accepts connections.
"""

import argparse
import base64
import os
import re
import socket
import ssl
import subprocess
import sys
import threading
import time
import uuid
import xml.etree.ElementTree as ET
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import spnego
from spnego.channel_bindings import GssChannelBindings

NS = {
    "s": "http://www.w3.org/2003/05/soap-envelope",
    "a": "http://schemas.xmlsoap.org/ws/2004/08/addressing",
    "w": "http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd",
    "p": "http://schemas.microsoft.com/wbem/wsman/1/wsman.xsd",
    "rsp": "http://schemas.microsoft.com/wbem/wsman/1/windows/shell",
    "x": "http://schemas.xmlsoap.org/ws/2004/09/transfer",
    "f": "http://schemas.microsoft.com/wbem/wsman/1/wsmanfault",
    "cfg": "http://schemas.microsoft.com/wbem/wsman/1/config",
}
SHELL = NS["rsp"]
ACTION_PREFIX_SHELL = SHELL + "/"
ACTION_TRANSFER = "http://schemas.xmlsoap.org/ws/2004/09/transfer/"
DONE = SHELL + "/CommandState/Done"
RUNNING = SHELL + "/CommandState/Running"
BOUNDARY = b"Encrypted Boundary"
PROTOCOL = "application/HTTP-SPNEGO-session-encrypted"

FAULT_TIMEOUT = 2150858793
FAULT_UNKNOWN_ID = 2150858843
FAULT_TOO_LONG = 2147942606
FAULT_QUOTA = 2150859174
FAULT_ENVELOPE = 2150858817
FAULT_UNENCRYPTED = 2150858770


# The environment of the commands: with --no-egress, outbound HTTPS goes to a closed port, as
# from a host whose firewall blocks it (curl then cannot reach the controller).
COMMAND_ENV = None


class Command:
    def __init__(self, line):
        self.proc = subprocess.Popen(
            ["/bin/sh", "-c", line],
            env=COMMAND_ENV,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        self.out = {"stdout": bytearray(), "stderr": bytearray()}
        self.closed = {"stdout": False, "stderr": False}
        self.lock = threading.Condition()
        for name, pipe in (("stdout", self.proc.stdout), ("stderr", self.proc.stderr)):
            threading.Thread(target=self._pump, args=(name, pipe), daemon=True).start()

    def _pump(self, name, pipe):
        while True:
            chunk = pipe.read1(65536) if hasattr(pipe, "read1") else pipe.read(65536)
            with self.lock:
                if not chunk:
                    self.closed[name] = True
                    self.lock.notify_all()
                    return
                self.out[name] += chunk
                self.lock.notify_all()

    def finished(self):
        return all(self.closed.values()) and self.proc.poll() is not None

    def kill(self):
        try:
            os.killpg(self.proc.pid, 9)
        except OSError:
            pass


class Service:
    def __init__(self, args):
        self.args = args
        self.shells = {}  # shell id -> {command id: Command}
        self.lock = threading.Lock()
        self.users = {}
        for line in open(args.users, encoding="utf-8"):
            parts = line.rstrip("\n").split(":", 2)
            if len(parts) == 3:
                self.users[parts[1]] = parts[2]


def fault(code, subcode, text, message_id):
    relates = f"<a:RelatesTo>{message_id}</a:RelatesTo>" if message_id else ""
    return (
        '<s:Envelope xml:lang="en-US" xmlns:s="%s" xmlns:a="%s" xmlns:w="%s">'
        "<s:Header><a:Action>http://schemas.dmtf.org/wbem/wsman/1/wsman/fault</a:Action>"
        "<a:MessageID>uuid:%s</a:MessageID>%s</s:Header><s:Body><s:Fault><s:Code>"
        "<s:Value>s:Receiver</s:Value><s:Subcode><s:Value>w:%s</s:Value></s:Subcode></s:Code>"
        '<s:Reason><s:Text xml:lang="en-US">%s</s:Text></s:Reason><s:Detail>'
        '<f:WSManFault xmlns:f="%s" Code="%d" Machine="localhost"><f:Message>%s</f:Message>'
        "</f:WSManFault></s:Detail></s:Fault></s:Body></s:Envelope>"
        % (NS["s"], NS["a"], NS["w"], str(uuid.uuid4()).upper(), relates, subcode, text,
           NS["f"], code, text)
    ).encode()


def reply(action, message_id, body):
    return (
        '<s:Envelope xml:lang="en-US" xmlns:s="%s" xmlns:a="%s" xmlns:x="%s" xmlns:w="%s" '
        'xmlns:rsp="%s" xmlns:p="%s"><s:Header><a:Action>%s</a:Action>'
        "<a:MessageID>uuid:%s</a:MessageID><a:To>http://schemas.xmlsoap.org/ws/2004/08/"
        "addressing/role/anonymous</a:To><a:RelatesTo>%s</a:RelatesTo></s:Header>"
        "<s:Body>%s</s:Body></s:Envelope>"
        % (NS["s"], NS["a"], NS["x"], NS["w"], NS["rsp"], NS["p"], action,
           str(uuid.uuid4()).upper(), message_id, body)
    ).encode()


class Fault(Exception):
    def __init__(self, code, subcode, text):
        super().__init__(text)
        self.code, self.subcode, self.text = code, subcode, text


def seconds(duration, default=20.0):
    m = re.fullmatch(r"PT([0-9.]+)S", (duration or "").strip())
    return float(m.group(1)) if m else default


class KerberosAcceptor:
    """SPNEGO with Kerberos accepted by MIT's GSS-API itself (Debian's python3-gssapi), for the
    principals in KRB5_KTNAME; the WinRM wrapping as pyspnego does it for MIT (RFC 4121 wrap
    tokens, header apart). pyspnego's own Kerberos needs the `krb5` package, a long C build."""

    negotiated_protocol = "kerberos"

    def __init__(self, application_data=None):
        """With `application_data` (a TLS channel's tls-server-end-point binding), a ticket
        whose authenticator does not carry that binding is refused, as Windows' WinRM service
        does at CbtHardeningLevel Strict (MIT reports a matched binding as channel_bound)."""
        import gssapi
        import gssapi.raw
        bindings = None
        if application_data is not None:
            bindings = gssapi.raw.ChannelBindings(application_data=application_data)
        self._required = application_data is not None
        self._ctx = gssapi.SecurityContext(usage="accept", channel_bindings=bindings)
        self._complete = False

    @property
    def complete(self):
        return self._complete

    @property
    def client_principal(self):
        return str(self._ctx.initiator_name)

    def step(self, token):
        import gssapi
        out = self._ctx.step(token)  # raises on a refused ticket (expired, not yet valid, ...)
        self._complete = self._ctx.complete
        if self._complete and self._required and \
                gssapi.RequirementFlag.channel_bound not in self._ctx.actual_flags:
            raise ValueError("the ticket carries no channel binding for this TLS channel")
        return out

    def wrap_winrm(self, plain):
        from gssapi.raw import IOV, IOVBufferType, wrap_iov
        iov = IOV(IOVBufferType.header, plain, IOVBufferType.padding, std_layout=False)
        wrap_iov(self._ctx, iov, confidential=True)

        class Wrapped:
            header = iov[0].value or b""
            data = (iov[1].value or b"") + (iov[2].value or b"")
        return Wrapped

    def unwrap_winrm(self, header, data):
        from gssapi.raw import IOV, IOVBufferType, unwrap_iov
        iov = IOV((IOVBufferType.header, False, header), data, IOVBufferType.data,
                  std_layout=False)
        unwrap_iov(self._ctx, iov)
        return iov[1].value or b""


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "Microsoft-HTTPAPI/2.0"

    def setup(self):
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.context = None  # this connection's security context
        self.user = None

    def log_message(self, *args):
        pass

    # --- authentication -------------------------------------------------------------------------
    def _unauthorized(self, token=None):
        self.send_response(401)
        if token:
            self.send_header("WWW-Authenticate", "Negotiate " + base64.b64encode(token).decode())
        else:
            self.send_header("WWW-Authenticate", "Negotiate")
            if self.server.tls:
                self.send_header("WWW-Authenticate", 'Basic realm="WSMAN"')
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _authenticate(self, body):
        """True when the request may go on; otherwise a reply was sent."""
        header = self.headers.get("Authorization", "")
        if header.startswith("Basic ") and self.server.tls:
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
            if self.server.service.users.get(user) == password:
                self.user = user
                return True
            self._unauthorized()
            return False
        if header.startswith("Negotiate ") or header.startswith("NTLM "):
            token = base64.b64decode(header.split(" ", 1)[1])
            if self.context is None or self.context.complete:
                if self.server.args.keytab and not token.startswith(b"NTLMSSP"):
                    self.context = KerberosAcceptor(
                        self.server.binding_data if self.server.bindings else None)
                else:
                    self.context = spnego.server(protocol="negotiate",
                                                 channel_bindings=self.server.bindings)
            try:
                out = self.context.step(token)
            except Exception as e:
                sys.stderr.write("endpoint: authentication failed: %s\n" % e)
                self.context = None
                self._unauthorized()
                return False
            if not self.context.complete:
                self._unauthorized(out)
                return False
            protocol = self.context.negotiated_protocol
            if self.server.args.auth_log:
                with open(self.server.args.auth_log, "a") as log:
                    log.write("%s %s\n" % (protocol, self.context.client_principal))
            if self.server.args.refuse_ntlm and protocol != "kerberos":
                self.context = None
                self._unauthorized()
                return False
            self.user = self.context.client_principal
            self.final_token = out
            return True
        if self.user is not None and self.context is not None and self.context.complete:
            return True  # connection-bound: already authenticated
        self._unauthorized()
        return False

    # --- framing ----------------------------------------------------------------------------------
    def _decrypt(self, body):
        ctype = self.headers.get("Content-Type", "")
        if "multipart/encrypted" not in ctype:
            return body, False
        parts = body.split(b"--" + BOUNDARY)
        meta, payload = parts[1], parts[2]
        length = int(re.search(rb"Length=(\d+)", meta).group(1))
        payload = payload.split(b"application/octet-stream\r\n", 1)[1]
        sig_len = int.from_bytes(payload[:4], "little")
        header, data = payload[4:4 + sig_len], payload[4 + sig_len:]
        plain = self.context.unwrap_winrm(header, data)
        if len(plain) != length:
            raise ValueError("encrypted message length mismatch")
        return plain, True

    def _encrypt(self, plain):
        wrapped = self.context.wrap_winrm(plain)
        return (
            b"--" + BOUNDARY + b"\r\n\tContent-Type: " + PROTOCOL.encode() + b"\r\n"
            b"\tOriginalContent: type=application/soap+xml;charset=UTF-8;Length="
            + str(len(plain)).encode() + b"\r\n--" + BOUNDARY + b"\r\n"
            b"\tContent-Type: application/octet-stream\r\n"
            + len(wrapped.header).to_bytes(4, "little") + wrapped.header + wrapped.data
            + b"--" + BOUNDARY + b"--\r\n"
        )

    def _send(self, status, body, encrypted):
        self.send_response(status)
        final = getattr(self, "final_token", None)
        if final:
            self.send_header("WWW-Authenticate", "Negotiate " + base64.b64encode(final).decode())
            self.final_token = None
        if encrypted:
            body = self._encrypt(body)
            self.send_header(
                "Content-Type",
                'multipart/encrypted;protocol="%s";boundary="Encrypted Boundary"' % PROTOCOL,
            )
        else:
            self.send_header("Content-Type", "application/soap+xml;charset=UTF-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length) if length else b""
        if not self._authenticate(body):
            return
        if not body:  # pywinrm's empty POST that sets up encryption
            self._send(200, b"", False)
            return
        try:
            plain, encrypted = self._decrypt(body)
        except Exception as e:
            self.send_response(400)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if not encrypted and not self.server.tls and not self.server.args.allow_unencrypted:
            self._send(500, fault(FAULT_UNENCRYPTED, "AccessDenied",
                                  "The WinRM service refuses unencrypted traffic.", None), False)
            return
        status, out = self.server.handle_envelope(plain)
        forge = self.server.args.forge
        if forge == "no-relates-to":
            out = re.sub(rb"<a:RelatesTo>[^<]*</a:RelatesTo>", b"", out)
        elif forge == "plain-500" and encrypted and b"<rsp:ReceiveResponse" in out:
            forged = base64.b64encode(b"FORGED-OUTPUT\n")
            out = re.sub(rb'(<rsp:Stream Name="stdout"[^>]*>)[^<]*(</rsp:Stream>)',
                         lambda m: m.group(1) + forged + m.group(2), out)
            self._send(500, out, False)
            return
        self._send(status, out, encrypted)


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, args):
        super().__init__(("127.0.0.1", args.port), Handler)
        self.args = args
        self.service = Service(args)
        self.tls = bool(args.tls_cert)
        if self.tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(args.tls_cert, args.tls_key)
            self.socket = ctx.wrap_socket(self.socket, server_side=True)
        self.bindings = None
        if args.require_cbt:
            self.binding_data = end_point_binding(args.tls_cert)
            self.bindings = GssChannelBindings(application_data=self.binding_data)

    def handle_envelope(self, plain):
        try:
            root = ET.fromstring(plain)
        except ET.ParseError:
            return 400, b""
        message_id = (root.findtext("s:Header/a:MessageID", namespaces=NS) or "").strip()
        try:
            if len(plain) > self.args.max_envelope_kb * 1024:
                raise Fault(FAULT_ENVELOPE, "EncodingLimit",
                            "The request's envelope is larger than MaxEnvelopeSizekb.")
            action = (root.findtext("s:Header/a:Action", namespaces=NS) or "").strip()
            body = self.dispatch(action, root)
            return 200, reply(action + "Response", message_id, body)
        except Fault as f:
            return 500, fault(f.code, f.subcode, f.text, message_id)

    def shell(self, root):
        shell_id = (root.findtext("s:Header/w:SelectorSet/w:Selector", namespaces=NS) or "").strip()
        shells = self.service.shells
        if shell_id not in shells:
            raise Fault(FAULT_UNKNOWN_ID, "InvalidSelectors",
                        "The request contained invalid selectors for the resource.")
        return shell_id, shells[shell_id]

    def command(self, commands, command_id):
        if command_id not in commands:
            raise Fault(FAULT_UNKNOWN_ID, "InvalidSelectors",
                        "The Windows Remote Shell received a request to perform an operation on "
                        "a command identifier that does not exist.")
        return commands[command_id]

    def dispatch(self, action, root):
        body = root.find("s:Body", NS)
        if action == ACTION_TRANSFER + "Get":
            return ('<cfg:Config xmlns:cfg="%s"><cfg:MaxEnvelopeSizekb>%d</cfg:MaxEnvelopeSizekb>'
                    "<cfg:MaxTimeoutms>60000</cfg:MaxTimeoutms></cfg:Config>"
                    % (NS["cfg"], self.args.max_envelope_kb))
        if action == ACTION_TRANSFER + "Create":
            with self.service.lock:
                if len(self.service.shells) >= self.args.max_shells:
                    raise Fault(FAULT_QUOTA, "QuotaLimit",
                                "The maximum number of concurrent shells for this user has been exceeded.")
                shell_id = str(uuid.uuid4()).upper()
                self.service.shells[shell_id] = {}
            return ('<x:ResourceCreated><a:Address>http://127.0.0.1/wsman</a:Address>'
                    "<a:ReferenceParameters><w:ResourceURI>%s/cmd</w:ResourceURI><w:SelectorSet>"
                    '<w:Selector Name="ShellId">%s</w:Selector></w:SelectorSet>'
                    "</a:ReferenceParameters></x:ResourceCreated>" % (SHELL, shell_id))
        if action == ACTION_TRANSFER + "Delete":
            shell_id, commands = self.shell(root)
            for c in commands.values():
                c.kill()
            del self.service.shells[shell_id]
            return ""
        if action == ACTION_PREFIX_SHELL + "Command":
            _, commands = self.shell(root)
            line = body.find("rsp:CommandLine", NS)
            parts = [line.findtext("rsp:Command", default="", namespaces=NS)]
            parts += [a.text or "" for a in line.findall("rsp:Arguments", NS)]
            text = " ".join(parts)
            if len(text) > 8191:
                raise Fault(FAULT_TOO_LONG, "InternalError", "The filename or extension is too long.")
            command_id = str(uuid.uuid4()).upper()
            commands[command_id] = Command(text)
            return "<rsp:CommandResponse><rsp:CommandId>%s</rsp:CommandId></rsp:CommandResponse>" % command_id
        if action == ACTION_PREFIX_SHELL + "Send":
            _, commands = self.shell(root)
            stream = body.find("rsp:Send/rsp:Stream", NS)
            c = self.command(commands, stream.get("CommandId"))
            data = base64.b64decode(stream.text or "")
            try:
                if data:
                    c.proc.stdin.write(data)
                    c.proc.stdin.flush()
                if stream.get("End", "").lower() == "true":
                    c.proc.stdin.close()
            except BrokenPipeError:
                pass
            return "<rsp:SendResponse/>"
        if action == ACTION_PREFIX_SHELL + "Receive":
            _, commands = self.shell(root)
            desired = body.find("rsp:Receive/rsp:DesiredStream", NS)
            command_id = desired.get("CommandId")
            c = self.command(commands, command_id)
            timeout = seconds(root.findtext("s:Header/w:OperationTimeout", namespaces=NS))
            limit = int(root.findtext("s:Header/w:MaxEnvelopeSize", default="153600", namespaces=NS))
            return self.receive(c, command_id, timeout, limit)
        if action == ACTION_PREFIX_SHELL + "Signal":
            _, commands = self.shell(root)
            signal = body.find("rsp:Signal", NS)
            c = self.command(commands, signal.get("CommandId"))
            c.kill()
            del commands[signal.get("CommandId")]
            return "<rsp:SignalResponse/>"
        raise Fault(2150858853, "ActionNotSupported", "The action is not supported: " + action)

    def receive(self, c, command_id, timeout, limit):
        # Room for output in one reply: the client's MaxEnvelopeSize, base64 and framing counted.
        room = max(1024, (limit - 2048) * 3 // 4)
        deadline = time.monotonic() + timeout
        with c.lock:
            while not (c.out["stdout"] or c.out["stderr"] or c.finished()):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise Fault(FAULT_TIMEOUT, "TimedOut",
                                "The WS-Management service cannot complete the operation within "
                                "the time specified in OperationTimeout.")
                c.lock.wait(min(left, 0.05))
                c.proc.poll()
            streams = []
            for name in ("stdout", "stderr"):
                take = bytes(c.out[name][:room])
                del c.out[name][:len(take)]
                room -= len(take)
                if take:
                    streams.append('<rsp:Stream Name="%s" CommandId="%s">%s</rsp:Stream>'
                                   % (name, command_id, base64.b64encode(take).decode()))
            done = c.finished() and not c.out["stdout"] and not c.out["stderr"]
        if done:
            for name in ("stdout", "stderr"):
                streams.append('<rsp:Stream Name="%s" CommandId="%s" End="true"></rsp:Stream>'
                               % (name, command_id))
            state = ('<rsp:CommandState CommandId="%s" State="%s"><rsp:ExitCode>%d</rsp:ExitCode>'
                     "</rsp:CommandState>" % (command_id, DONE, c.proc.returncode & 0xFFFFFFFF))
        else:
            state = '<rsp:CommandState CommandId="%s" State="%s"/>' % (command_id, RUNNING)
        return "<rsp:ReceiveResponse>%s%s</rsp:ReceiveResponse>" % ("".join(streams), state)


def end_point_binding(cert_file):
    """RFC 5929 tls-server-end-point: the certificate's hash by its signature's hash algorithm,
    SHA-256 for MD5 and SHA-1."""
    import hashlib
    from cryptography import x509
    with open(cert_file) as f:
        der = ssl.PEM_cert_to_DER_cert(f.read())
    name = x509.load_der_x509_certificate(der).signature_hash_algorithm.name
    if name in ("md5", "sha1"):
        name = "sha256"
    return b"tls-server-end-point:" + hashlib.new(name, der).digest()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--users", required=True)
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--tls-cert")
    p.add_argument("--tls-key")
    p.add_argument("--require-cbt", action="store_true")
    p.add_argument("--max-envelope-kb", type=int, default=150)
    p.add_argument("--max-shells", type=int, default=30)
    p.add_argument("--allow-unencrypted", action="store_true")
    p.add_argument("--no-egress", action="store_true")
    # A man in the middle: every Receive answered with its output altered, as a plain HTTP 500
    # on the sealed connection (plain-500), or replies without RelatesTo (no-relates-to).
    p.add_argument("--forge", choices=["plain-500", "no-relates-to"])
    p.add_argument("--keytab")
    p.add_argument("--refuse-ntlm", action="store_true")
    p.add_argument("--auth-log")
    args = p.parse_args()
    if args.keytab:
        os.environ["KRB5_KTNAME"] = "FILE:" + args.keytab
        import gssapi  # noqa: F401 -- fail now, not at the first login
    if args.no_egress:
        global COMMAND_ENV
        COMMAND_ENV = dict(os.environ, https_proxy="http://127.0.0.1:9", no_proxy="")
    os.environ["NTLM_USER_FILE"] = args.users
    server = Server(args)
    print("listening on %d" % server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
