# schemathesis hooks: every REST request gets an HS256 token whose aud is its URL (query left out,
# port left out, as the Azure SDK writes audiences), signed with the fixture key of run.sh.
import base64, hashlib, hmac, json, time
import schemathesis

KEY = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789ABCDEFGH"

def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

def token(aud):
    now = int(time.time())
    header = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    payload = b64(json.dumps({"aud": aud, "iat": now, "nbf": now, "exp": now + 3600}).encode())
    sig = b64(hmac.new(KEY.encode(), f"{header}.{payload}".encode(), hashlib.sha256).digest())
    return f"{header}.{payload}.{sig}"

@schemathesis.auth()
class AzureAuth:
    def get(self, case, ctx):
        return KEY

    def set(self, case, data, ctx):
        case.headers = case.headers or {}
        case.headers["Authorization"] = "Bearer " + token("http://127.0.0.1" + case.formatted_path)
