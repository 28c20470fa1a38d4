-- The statistics of tokens as a lookup in the current generation reads them: the second step
-- of a lookup, for the anchors of the candidates the article could join, and the story counts
-- a bulk load starts from. Built by `stats_call` in stored.py.
-- KEYS: the statistics hashes of the current and the previous generation (STATS_BUCKETS
--       each)
-- ARGV: 1 the tokens, space-separated, 2 their statistics buckets (one byte each)
-- Reply: one "count own languages" line per token, in the order given (empty when unseen)
local tokens = split(ARGV[1], ' ')
local lines = {}
for i, token in ipairs(tokens) do
  local value = token_stats(token, stats_keys(1, ARGV[2], i))
  lines[i] = value or ''
end
return table.concat(lines, '\n')
