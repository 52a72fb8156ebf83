"""A throwaway test PKI for tests/integration/test_tls.py, made with the openssl CLI.

    pki = TestPki(tmpdir)
    pki.ca_pem                      # the CA gcmon is told to trust (GcmonTLSCAFile)
    cert, key = pki.leaf("good")    # 127.0.0.1 + localhost, signed by that CA, valid now
    cert, key = pki.leaf("untrusted", ca="rogue")        # signed by a CA nobody trusts
    cert, key = pki.leaf("wronghost", names="DNS:other.example")
    cert, key = pki.leaf("expired", start="20200101000000Z", end="20200201000000Z")

Keys are EC P-256 (fast to make); every file lives in the given directory.
"""
import os
import subprocess

CA_CNF = """[ca]
default_ca = tca
[tca]
database = {d}/index-{ca}.txt
new_certs_dir = {d}
serial = {d}/serial-{ca}
default_md = sha256
policy = pol
copy_extensions = copy
unique_subject = no
[pol]
commonName = supplied
"""


def _run(*cmd, cwd):
    p = subprocess.run(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30)
    if p.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{p.stdout.decode(errors='replace')}")


class TestPki:
    __test__ = False    # not a pytest class

    def __init__(self, workdir):
        self.dir = str(workdir)
        os.makedirs(self.dir, exist_ok=True)
        os.chmod(self.dir, 0o755)       # httpd's children (www-data) read the CA file
        self.ca_pem = self._ca("ca", "gcmon test CA")
        self.rogue_pem = self._ca("rogue", "untrusted rogue CA")

    def path(self, name):
        return os.path.join(self.dir, name)

    def _ca(self, name, cn):
        _run("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
             "-nodes", "-days", "3", "-subj", f"/CN={cn}",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign",
             "-keyout", self.path(f"{name}.key"), "-out", self.path(f"{name}.pem"), cwd=self.dir)
        with open(self.path(f"index-{name}.txt"), "w"):
            pass
        with open(self.path(f"serial-{name}"), "w") as f:
            f.write("1000\n")
        with open(self.path(f"{name}.cnf"), "w") as f:
            f.write(CA_CNF.format(d=self.dir, ca=name))
        return self.path(f"{name}.pem")

    def leaf(self, name, ca="ca", names="IP:127.0.0.1,DNS:localhost", start=None, end=None):
        """A server certificate and its key (paths) for the given subjectAltNames and dates."""
        key, csr, cert = self.path(f"{name}.key"), self.path(f"{name}.csr"), self.path(f"{name}.pem")
        _run("openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
             "-nodes", "-subj", f"/CN={name}.gcmon.test", "-addext", f"subjectAltName={names}",
             "-addext", "extendedKeyUsage=serverAuth", "-keyout", key, "-out", csr, cwd=self.dir)
        dates = (["-startdate", start, "-enddate", end] if start else ["-days", "3"])
        _run("openssl", "ca", "-batch", "-notext", "-config", self.path(f"{ca}.cnf"),
             "-cert", self.path(f"{ca}.pem"), "-keyfile", self.path(f"{ca}.key"),
             "-in", csr, "-out", cert, *dates, cwd=self.dir)
        return cert, key
