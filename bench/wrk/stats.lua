-- GET stats: one article (IDS=1) or a listing page's batch of IDS ids.
local ids = tonumber(os.getenv("IDS") or "1")
local articles = tonumber(os.getenv("ARTICLES") or "1000")

request = function()
  if ids == 1 then
    return wrk.format("GET", "/api/v1/articles/news/2026/a" .. math.random(1, articles) .. "/stats")
  end
  local parts = {}
  local first = math.random(1, articles - ids)
  for i = 1, ids do parts[i] = "news/2026/a" .. (first + i) end
  return wrk.format("GET", "/api/v1/articles/stats?ids=" .. table.concat(parts, ","))
end
