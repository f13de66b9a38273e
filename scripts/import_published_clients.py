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

# short id in clients.json -> (profile name, tags)
SELECTION = {
    "edge_133_win11_23h2": ("edge-133-win11", ["default", "browsers"]),
    "firefox_137_win11": ("firefox-137-win11", ["default", "browsers"]),
    "safari_264_all": ("safari-26.4", ["default", "browsers", "mobile"]),
    "chrome_101_win10": ("chrome-101-win10", ["browsers"]),
    "android_13_14": ("android-13-14", ["default", "mobile"]),
    "android_70": ("android-7.0", ["default", "mobile", "legacy"]),
    "android_442": ("android-4.4.2", ["mobile", "legacy"]),
    "java_80442": ("java-8u442", ["default", "java"]),
    "java_1703_2106": ("java-17-21", ["java"]),
    "java_7u25": ("java-7u25", ["default", "java", "legacy"]),
    "ie_11_win7": ("ie-11-win7", ["default", "browsers", "legacy"]),
    "openssl_102e": ("openssl-1.0.2e", ["legacy"]),
    "openssl_350": ("openssl-3.5.0", ["default"]),
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
        origin = "captured" if c["origin"] == "wireshark-capture" else "imported"
        how = ("captured with Wireshark by testssl.sh contributors"
               if origin == "captured" else "from the SSL Labs client simulation API")
        doc = doc_from_hello(
            bytes.fromhex(c["hello_hex"]), name=name, origin=origin,
            description=f"{c['name']}: the ClientHello {how}",
            client={"name": c["name"]},
            source=f"{meta['repo']} {meta['file']} @ {meta['commit'][:12]} ({c['short']})",
            tags=tags)
        write_yaml(doc, out / f"{name}.yaml")
        print(f"wrote {out / (name + '.yaml')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
