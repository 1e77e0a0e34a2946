-- POST one view (or a batch of 100 events) per request. Environment:
--   ARTICLES: how many article ids (1 = every request on one hot article)
--   BATCH:    events per request (1 = a single event object)
-- Each request carries a random X-Forwarded-For (documentation addresses, each in a /64
-- of its own: tracker counts an IPv6 /64 as one address), so that tracker, behind a
-- trusted proxy, sees many readers: dedup, sketches and counters work.
local articles = tonumber(os.getenv("ARTICLES") or "1000")
local batch = tonumber(os.getenv("BATCH") or "1")
local channels = {"telegram", "facebook", "twitter", "whatsapp", "email", "copy_link"}

local function event()
  local id = math.random(1, articles)
  if math.random() < 0.9 then
    return '{"type":"view","article_id":"news/2026/a' .. id .. '"}'
  end
  return '{"type":"share","article_id":"news/2026/a' .. id .. '","channel":"' ..
    channels[math.random(1, #channels)] .. '"}'
end

request = function()
  local body
  if batch == 1 then
    body = event()
  else
    local parts = {}
    for i = 1, batch do parts[i] = event() end
    body = '{"events":[' .. table.concat(parts, ",") .. ']}'
  end
  local headers = {
    ["Content-Type"] = "application/json",
    ["User-Agent"] = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
    ["X-Forwarded-For"] = string.format("2001:db8:%x:%x::1", math.random(0, 65535), math.random(0, 65535)),
  }
  return wrk.format("POST", "/api/v1/events", headers, body)
end
