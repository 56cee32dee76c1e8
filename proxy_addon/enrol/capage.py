"""The page at ``/ca`` on the proxy's own port, as ``mitm.it`` is for
mitmproxy but written for a school: what the certificate is for and what it
is not, the fingerprint to check, the files, and the steps for each kind of
device, by hand and through the school's management tools.  And the one-time
page a device sees when one of its connections refused the certificate."""

from __future__ import annotations

from html import escape

from .cafiles import FORMATS, SchoolCA, file_name

_STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;background:#f4f5f7;color:#1b1b1b;line-height:1.5}
main{max-width:46rem;margin:0 auto;padding:1.5rem 1rem}
h1{font-size:1.5rem}h2{font-size:1.15rem;margin-top:1.6rem}
section,.files{background:#fff;padding:.4rem 1rem .8rem;border-radius:.4rem;margin:.8rem 0}
dl{background:#fff;padding:.6rem 1rem;border-radius:.4rem}dt{font-weight:600}dd{margin:0 0 .4rem}
code{overflow-wrap:anywhere}.fp{font-family:ui-monospace,monospace;font-size:.85rem;overflow-wrap:anywhere}
.files a{display:inline-block;margin:.3rem .6rem .3rem 0;padding:.4rem .8rem;border:1px solid #1d4ed8;border-radius:.3rem;
color:#1d4ed8;text-decoration:none}
"""

_LABELS = {"cer": "Windows (.cer)", "mobileconfig": "Apple profile (.mobileconfig)",
           "crt": "ChromeOS, Android, Linux (.crt)", "pem": "PEM (.pem)"}

_STEPS = """
<section><h2>Windows</h2>
<p><b>All school computers (Group Policy)</b>: in the Group Policy Management Editor, open
<i>Computer Configuration → Policies → Windows Settings → Security Settings → Public Key Policies →
Trusted Root Certification Authorities</i>, choose <i>Import</i> and give it the <code>.cer</code> file.</p>
<p><b>Intune</b>: <i>Devices → Configuration → Create → Windows 10 and later → Templates → Trusted certificate</i>,
upload the <code>.cer</code> file, destination store <i>Computer certificate store - Root</i>, assign to the
staff device group.</p>
<p><b>One computer by hand</b>: open the <code>.cer</code> file, <i>Install Certificate → Local Machine →
Place all certificates in the following store → Trusted Root Certification Authorities</i>.</p></section>
<section><h2>macOS, iPhone and iPad</h2>
<p><b>Jamf, Intune or another MDM</b>: add a <i>Certificate</i> payload with the <code>.cer</code> file, or upload
the <code>.mobileconfig</code> profile as it is. Profiles pushed by an MDM are trusted for HTTPS at once.</p>
<p><b>By hand on a Mac</b>: open the <code>.mobileconfig</code> file, then <i>System Settings → Privacy &amp;
Security → Profiles</i> and install it.</p>
<p><b>By hand on an iPhone or iPad</b>: open this page in Safari and tap the <code>.mobileconfig</code> file,
install it in <i>Settings → Profile Downloaded</i>, then switch on full trust in <i>Settings → General → About →
Certificate Trust Settings</i>.</p></section>
<section><h2>Chromebooks</h2>
<p><b>Google Admin console</b>: <i>Devices → Networks → Certificates</i>, choose the staff organisational unit,
<i>Add certificate</i>, upload the <code>.crt</code> file and tick <i>Chromebook: use this certificate as an
HTTPS certificate authority</i>.</p></section>
<section><h2>Linux, Firefox and Chromium</h2>
<p><b>The system</b>: copy the <code>.crt</code> file to <code>/usr/local/share/ca-certificates/</code> and run
<code>sudo update-ca-certificates</code>.</p>
<p><b>Firefox</b> keeps its own store: set the enterprise policy <code>Certificates → ImportEnterpriseRoots</code>
(Windows, macOS) or <code>Certificates → Install</code> with the <code>.crt</code> file (Linux), or import it in
<i>Settings → Privacy &amp; Security → Certificates → View Certificates → Authorities</i>.</p>
<p><b>Chromium and Chrome on Linux</b> read <code>~/.pki/nssdb</code>:
<code>certutil -d sql:$HOME/.pki/nssdb -A -t C,, -n school-web-filter -i schoolproxy-ca.crt</code>
(<code>certutil</code> is in the <code>libnss3-tools</code> package).</p></section>
<section><h2>Android</h2>
<p>Managed devices: push the <code>.crt</code> file as a trusted certificate through the school's MDM. By hand:
<i>Settings → Security → Encryption &amp; credentials → Install a certificate → CA certificate</i>. Android apps
trust only the system's own authorities unless they say otherwise, so apps will pass through undecrypted.</p></section>
"""


def ca_page(ca: SchoolCA, prefix: str = "/ca/") -> str:
    """The onboarding page; ``prefix`` is where the files are served."""
    links = "".join(f'<a href="{escape(prefix + file_name(f))}" download>{escape(_LABELS[f])}</a>' for f in FORMATS
                    if f in _LABELS)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title>The school web filter's certificate</title>
<style>{_STYLE}</style></head>
<body><main>
<h1>Install the school web filter's certificate</h1>
<p>The school's web filter applies the staff Internet policy. For some HTTPS sites it must see the page, not only
the site's name: to show its block page instead of a browser error, to apply limits to streaming, uploads and
downloads, and to record search terms as the policy says. A device does that only if it trusts this
certificate.</p>
<p>The certificate was made by this filter, and only this filter holds its key. Banking, health and webmail sites
are never opened this way. What the filter records is set out in the staff privacy notice.</p>
<p>Before installing it, check that the fingerprint your device shows is exactly this one:</p>
<dl><dt>Name</dt><dd><code>{escape(ca.subject)}</code></dd>
<dt>SHA-256 fingerprint</dt><dd class="fp">{escape(ca.sha256)}</dd>
<dt>Valid until</dt><dd>{escape(ca.not_after.strftime("%d %B %Y"))}</dd></dl>
<div class="files">{links}</div>
{_STEPS}
</main></body></html>
"""


def untrusted_page(ca_url: str, url: str) -> str:
    """Shown once to a device one of whose HTTPS connections refused the
    certificate: its blocked sites show a browser error until it is
    installed.  Plain HTTP, so the device can open it."""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title>This device does not trust the school web filter yet</title>
<style>{_STYLE}</style></head>
<body><main>
<h1>This device does not trust the school web filter yet</h1>
<p>A secure (HTTPS) connection from this device refused the school web filter's certificate. Until the
certificate is installed, sites the policy blocks show a browser error ("This site can't be reached",
"Your connection is not private") instead of the page that says why, and some sites may not open.</p>
<p><a href="{escape(ca_url)}">Install the certificate</a>, or ask the IT technician to install it for you.
This page is shown once.</p>
<p><a href="{escape(url)}">Continue to {escape(url)}</a></p>
</main></body></html>
"""
