// runner/mesh-certs.ts with the machine's openssl: the CA and the leaves it
// makes, what it keeps, what it makes anew, and the Secret-like layout whose
// ..data swap rotates a certificate in one rename.
import { expect } from "chai";
import { X509Certificate } from "node:crypto";
import { lstatSync, mkdtempSync, readFileSync, readlinkSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ensureMeshCerts, identityDir, meshIdentities, readIssued, reissueCertificate, spiffeId } from "../../runner/mesh-certs.ts";

describe("runner/mesh-certs.ts", function () {
  this.timeout(30_000);
  let dir: string;
  beforeEach(function () {
    dir = mkdtempSync(join(tmpdir(), "shop-mesh-certs-"));
  });
  afterEach(function () {
    rmSync(dir, { recursive: true, force: true });
  });

  const leaf = (identity: string) => new X509Certificate(readFileSync(join(identityDir(dir, identity), "tls.crt")));

  it("makes a CA and a leaf per identity whose only SAN is its SPIFFE ID, signed by the CA, as server and client", function () {
    const identities = meshIdentities(["orders", "catalog"]);
    expect(identities).to.deep.equal(["orders", "catalog", "edge", "edge-backend"]);
    const result = ensureMeshCerts(dir, identities);
    expect(result).to.deep.equal({ caCreated: true, issued: identities, kept: [] });
    const ca = new X509Certificate(readFileSync(join(dir, "ca.crt")));
    expect(ca.ca).to.equal(true);
    expect(lstatSync(join(dir, "ca.key")).mode & 0o077).to.equal(0);
    for (const identity of identities) {
      const cert = leaf(identity);
      expect(cert.subjectAltName).to.equal(`URI:${spiffeId(identity)}`);
      expect(cert.ca).to.equal(false);
      expect(cert.verify(ca.publicKey)).to.equal(true);
      expect(cert.keyUsage).to.include.members(["1.3.6.1.5.5.7.3.1", "1.3.6.1.5.5.7.3.2"]);
      expect(readFileSync(join(identityDir(dir, identity), "ca.crt"), "utf8")).to.equal(readFileSync(join(dir, "ca.crt"), "utf8"));
    }
    expect(spiffeId("orders")).to.equal("spiffe://shop.local/ns/shop/sa/orders");
  });

  it("keeps what is valid, and makes anew only a leaf that is not", function () {
    ensureMeshCerts(dir, ["orders", "catalog"]);
    const before = { orders: readIssued(dir, "orders")!.serial, catalog: readIssued(dir, "catalog")!.serial };
    expect(ensureMeshCerts(dir, ["orders", "catalog"])).to.deep.equal({ caCreated: false, issued: [], kept: ["orders", "catalog"] });
    // catalog's key replaced by another's: no longer its certificate's key.
    const folder = identityDir(dir, "catalog");
    const data = join(folder, readlinkSync(join(folder, "..data")));
    writeFileSync(join(data, "tls.key"), readFileSync(join(identityDir(dir, "orders"), "tls.key")));
    expect(ensureMeshCerts(dir, ["orders", "catalog"])).to.deep.equal({ caCreated: false, issued: ["catalog"], kept: ["orders"] });
    expect(readIssued(dir, "orders")!.serial).to.equal(before.orders);
    expect(readIssued(dir, "catalog")!.serial).to.not.equal(before.catalog);
  });

  it("makes every leaf anew under a new CA when the CA is not valid", function () {
    ensureMeshCerts(dir, ["orders"]);
    writeFileSync(join(dir, "ca.key"), "not a key");
    const result = ensureMeshCerts(dir, ["orders"]);
    expect(result).to.deep.equal({ caCreated: true, issued: ["orders"], kept: [] });
    expect(leaf("orders").verify(new X509Certificate(readFileSync(join(dir, "ca.crt"))).publicKey)).to.equal(true);
  });

  it("re-issues one identity by swapping ..data, leaving one dated folder and the same CA", function () {
    ensureMeshCerts(dir, ["payments"]);
    const folder = identityDir(dir, "payments");
    const first = readlinkSync(join(folder, "..data"));
    const ca = readFileSync(join(dir, "ca.crt"), "utf8");
    const issued = reissueCertificate(dir, "payments");
    expect(issued.uri).to.equal(spiffeId("payments"));
    expect(readIssued(dir, "payments")!.serial).to.equal(issued.serial);
    const second = readlinkSync(join(folder, "..data"));
    expect(second).to.not.equal(first);
    for (const file of ["tls.crt", "tls.key", "ca.crt"]) expect(readlinkSync(join(folder, file))).to.equal(join("..data", file));
    expect(readdirSync(folder).sort()).to.deep.equal([second, "..data", "ca.crt", "tls.crt", "tls.key"].sort());
    expect(readFileSync(join(dir, "ca.crt"), "utf8")).to.equal(ca);
  });
});
