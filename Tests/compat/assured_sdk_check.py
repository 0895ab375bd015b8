"""Runs the unmodified assured-py SDK against a running credgate (pointed at the sandbox).

Environment: ASSURED_BASE_URL = credgate's address, placeholder ASSURED_API_KEY / ASSURED_USER / ASSURED_PASS,
SANDBOX_URL = the sandbox's own address (for the plaintext read-back and counters), SOAK_SECONDS.
Prints 'assured-py: N passed, M failed' and exits non-zero on any failure.
"""
import asyncio
import json
import os
import sys
import time
import urllib.request

from assured import AssuredClient

passed = 0
failed = 0


def check(name, ok, detail=""):
    global passed, failed
    if ok:
        passed += 1
        print(f"ok   {name}")
    else:
        failed += 1
        print(f"FAIL {name} {detail}")


def control(method, path):
    request = urllib.request.Request(os.environ["SANDBOX_URL"] + path, method=method, data=b"" if method == "POST" else None)
    with urllib.request.urlopen(request, timeout=10) as r:
        body = r.read()
        return json.loads(body) if body else None


async def main():
    async with AssuredClient() as client:
        providers = await client.providers.list_all()
        check("providers.list_all() returns every provider", len(providers) == 57, f"got {len(providers)}")

        jwt = await client.users.login(os.environ["ASSURED_USER"], os.environ["ASSURED_PASS"])
        check("users.login() returns a token (credgate's placeholder)", isinstance(jwt, str) and jwt.count(".") == 2)
        # The SSN routes take the provider *profile* id; the raw list carries it.
        with urllib.request.urlopen(os.environ["ASSURED_BASE_URL"] + "/api/v1/users/providers-list/?limit=1", timeout=10) as r:
            profile_id = json.load(r)["results"][0].get("profile_id")
        check("a provider has a profile id", bool(profile_id))
        await client.provider_profile.update_ssn(profile_id, "123-45-6789", jwt)
        with urllib.request.urlopen(urllib.request.Request(
                os.environ["ASSURED_BASE_URL"] + f"/api/v1/users/retrieve-update-provider-ssn/{profile_id}/"), timeout=10) as r:
            readback = json.load(r)
        check("update_ssn() stored the SSN (plaintext read-back)", readback.get("ssn") == "123456789", str(readback))

        # Files: the SDK's two-step upload-and-attach, checked by credgate before it leaves; presign twice for the
        # same file, one platform call (credgate's cache); the presigned URL serves the very bytes.
        presign_route = "POST /api/v1/files/presign-s3-url/presign_s3_url/"
        pdf = b"%PDF-1.7\n" + os.urandom(30000)
        document = await client.provider_profile.upload_and_associate_document(
            profile_id, pdf, "Board License.pdf", "Board license", "license")
        check("upload_and_associate_document() attaches an s3:// file",
              str(document.document_url or "").startswith("s3://"), repr(document))
        calls_before = control("GET", "/sandbox/counters")["routes"].get(presign_route, 0)
        first = await client.files.presign_url(document.document_url)
        second = await client.files.presign_url(document.document_url)
        calls = control("GET", "/sandbox/counters")["routes"].get(presign_route, 0) - calls_before
        check("two files.presign_url() calls for one file: the same URL, one platform call", first == second and calls == 1,
              f"{calls} calls")
        with urllib.request.urlopen(first, timeout=10) as r:
            check("the presigned URL serves the uploaded bytes", r.read() == pdf)
        try:
            await client.files.upload(b"PK\x03\x04" + os.urandom(500), "cv.pdf")
            check("a .docx renamed .pdf is refused before it leaves", False, "uploaded")
        except Exception as e:  # noqa: BLE001
            check("a .docx renamed .pdf is refused before it leaves", "415" in repr(e) or getattr(e, "status_code", 0) == 415, repr(e))

        soak = float(os.environ.get("SOAK_SECONDS", "0"))
        lifetime = int(os.environ.get("TOKEN_LIFETIME", "4"))
        if soak:
            # Short-lived tokens from now on, and the current one revoked: credgate must log in again and then
            # keep renewing ahead of expiry while the SDK (which never refreshes) keeps going.
            control("POST", f"/sandbox/access-lifetime?seconds={lifetime}")
            control("POST", "/sandbox/revoke-tokens")
            before = control("GET", "/sandbox/counters")
        deadline = time.monotonic() + soak
        rounds = 0
        errors = []
        while time.monotonic() < deadline:
            try:
                await client.providers.list(limit=5)
                await client.provider_profile.update_ssn(profile_id, f"987-65-{4321 + rounds % 1000:04d}", jwt)
            except Exception as e:  # noqa: BLE001
                errors.append(repr(e))
            rounds += 1
            await asyncio.sleep(0.2)
        if soak:
            after = control("GET", "/sandbox/counters")
            renewals = (after["logins"] - before["logins"]) + (after["refreshes"] - before["refreshes"])
            check(f"credgate renewed the session {renewals} times over {soak:.0f} s of {lifetime} s tokens",
                  renewals >= int(soak / lifetime) - 1, json.dumps(after))
            check(f"{rounds} rounds over {soak:.0f} s (several token lifetimes) without an error", not errors, "; ".join(errors[:3]))

    print(f"assured-py: {passed} passed, {failed} failed")
    return 1 if failed else 0


sys.exit(asyncio.run(main()))
