"""Write profiles/clients/*.yaml from the published client hellos in shared/data/clients.json.

These hellos were captured by SSL Labs or by testssl.sh contributors (see the data's
README); the profiles keep that provenance. Run: python scripts/import_published_clients.py
[path/to/clients.json]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from prober.profiles.importer import doc_from_hello, write_yaml

# short id in clients.json -> (profile name, tags). Chosen to cover the fleet a public
# service still sees: current browsers, the Android and Java generations, old Windows and
# Apple stacks, OpenSSL/LibreSSL builds and Go.
SELECTION = {
    # current browsers
    "edge_133_win11_23h2": ("edge-133-win11", ["default", "browsers"]),
    "firefox_137_win11": ("firefox-137-win11", ["default", "browsers"]),
    "safari_264_all": ("safari-26.4", ["default", "browsers", "mobile"]),
    "safari_184_osx_154": ("safari-18.4", ["browsers", "mobile"]),
    "chrome_101_win10": ("chrome-101-win10", ["browsers"]),
    "firefox_100_win10": ("firefox-100-win10", ["browsers"]),
    # Android system stacks
    "android_15_16": ("android-15-16", ["mobile"]),
    "android_13_14": ("android-13-14", ["default", "mobile"]),
    "android_11_12": ("android-11-12", ["mobile"]),
    "android_X": ("android-10", ["mobile"]),
    "android_90": ("android-9", ["mobile"]),
    "android_81": ("android-8.1", ["mobile"]),
    "android_70": ("android-7.0", ["default", "mobile", "legacy"]),
    "android_60": ("android-6.0", ["mobile", "legacy"]),
    "android_500": ("android-5.0", ["mobile", "legacy"]),
    "android_442": ("android-4.4.2", ["mobile", "legacy"]),
    "android_43": ("android-4.3", ["mobile", "legacy"]),
    "android_411": ("android-4.1.1", ["mobile", "legacy"]),
    "android_237": ("android-2.3.7", ["mobile", "legacy"]),
    # Java
    "java_1703_2106": ("java-17-21", ["java"]),
    "java_1102": ("java-11.0.2", ["java"]),
    "java_80442": ("java-8u442", ["default", "java"]),
    "java_8u161": ("java-8u161", ["java", "legacy"]),
    "java_8u31": ("java-8u31", ["java", "legacy"]),
    "java_7u25": ("java-7u25", ["default", "java", "legacy"]),
    "java_6u45": ("java-6u45", ["java", "legacy"]),
    # Windows (Schannel) and Apple stacks
    "ie_11_win10": ("ie-11-win10", ["browsers"]),
    "ie_11_win81": ("ie-11-win8.1", ["browsers", "legacy"]),
    "ie_11_win7": ("ie-11-win7", ["default", "browsers", "legacy"]),
    "ie_11_winphone81": ("ie-11-winphone8.1", ["browsers", "mobile", "legacy"]),
    "ie_8_xp": ("ie-8-xp", ["browsers", "legacy"]),
    "ie_6_xp": ("ie-6-xp", ["browsers", "legacy"]),
    "edge_15_win10": ("edge-15-win10", ["browsers", "legacy"]),
    "safari_10_ios10": ("safari-10-ios10", ["browsers", "mobile", "legacy"]),
    "safari_9_ios9": ("safari-9-ios9", ["browsers", "mobile", "legacy"]),
    "safari_8_ios84": ("safari-8-ios8.4", ["browsers", "mobile", "legacy"]),
    "safari_6_ios601": ("safari-6-ios6", ["browsers", "mobile", "legacy"]),
    "apple_ats_9_ios9": ("apple-ats-9-ios9", ["mobile", "legacy"]),
    "chrome_49_xpsp3": ("chrome-49-xp", ["browsers", "legacy"]),
    "firefox_49_xpsp3": ("firefox-49-xp", ["browsers", "legacy"]),
    # libraries and tools
    "openssl_350": ("openssl-3.5.0", ["default"]),
    "openssl_111d": ("openssl-1.1.1d", []),
    "openssl_102e": ("openssl-1.0.2e", ["legacy"]),
    "openssl_101h": ("openssl-1.0.1h", ["legacy"]),
    "openssl_098y": ("openssl-0.9.8y", ["legacy"]),
    "libressl_336": ("libressl-3.3.6", []),
    "go_1178": ("go-1.17.8", []),
}


def main() -> int:
    repo = Path(__file__).resolve().parents[1]
    src = Path(sys.argv[1]) if len(sys.argv) > 1 else repo / "prober" / "data" / "clients.json"
    data = json.loads(src.read_text())
    out = repo / "profiles" / "clients"
    meta = data["_meta"]["source"]
    for c in data["clients"]:
        if c["short"] not in SELECTION or not c.get("hello_hex"):
            continue
        name, tags = SELECTION[c["short"]]
        # SSL Labs builds its simulated hellos from each client's published parameters:
        # reconstructed, not captured from the running client
        origin = "captured" if c["origin"] == "wireshark-capture" else "reconstructed"
        how = ("captured with Wireshark by testssl.sh contributors"
               if origin == "captured"
               else "reconstructed by SSL Labs' client simulation from the client's "
                    "published parameters")
        doc = doc_from_hello(
            bytes.fromhex(c["hello_hex"]), name=name, origin=origin,
            description=f"{c['name']}: the ClientHello {how}",
            client={"name": c["name"]},
            source=f"{meta['repo']} {meta['file']} @ {meta['commit'][:12]} ({c['short']})",
            tags=tags)
        if c.get("current") is not None:
            doc["extra"]["ssllabs_current"] = c["current"]
        write_yaml(doc, out / f"{name}.yaml")
        print(f"wrote {out / (name + '.yaml')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
