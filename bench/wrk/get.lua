-- GET one path (PATH_WANTED), again and again, each request from an address of its own
-- (X-Forwarded-For, a /64 each: tracker trusts the bench's proxy address), as many
-- readers' pages would ask: the public endpoints limit requests per address.
local path = os.getenv("PATH_WANTED") or "/healthz"

request = function()
  local headers = {
    ["X-Forwarded-For"] = string.format("2001:db8:%x:%x::1", math.random(0, 65535), math.random(0, 65535)),
  }
  return wrk.format("GET", path, headers)
end
