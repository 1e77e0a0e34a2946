-- GET one path (PATH), again and again.
local path = os.getenv("PATH_WANTED") or "/healthz"

request = function()
  return wrk.format("GET", path)
end
