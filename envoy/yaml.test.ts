import { expect } from "chai";
import { toYaml } from "./yaml.ts";

describe("envoy/yaml.ts", function () {
  it("quotes every string YAML would read as something else, and nothing more", function () {
    const text = toYaml({ plain: "envoy.filters.http.router", path: "/shop.users.v1.UserService/SignUp", duration: "0.250s", boolish: "on", key: "a: b", "@type": "t", empty: "" });
    expect(text).to.equal(
      [
        "plain: envoy.filters.http.router",
        "path: /shop.users.v1.UserService/SignUp",
        'duration: "0.250s"',
        'boolish: "on"',
        'key: "a: b"',
        '"@type": t',
        'empty: ""',
        "",
      ].join("\n"),
    );
  });

  it("writes nested lists and maps in block style, leaves out undefined keys and marks empty ones", function () {
    const text = toYaml({ list: [{ a: 1, b: [true, null] }, "x"], skipped: undefined, none: {}, nothing: [] }, "generated");
    expect(text).to.equal(["# generated", "list:", "  - a: 1", "    b:", "      - true", "      - null", "  - x", "none: {}", "nothing: []", ""].join("\n"));
  });
});
