-- Argo CD health check for kaizen.dev/ImprovementCycle (Argo CD shows no health for a custom
-- resource without one). Install it as `resource.customizations.health.kaizen.dev_ImprovementCycle`
-- in argocd-cm (see argocd-cm-health.yaml). Lua 5.1, as Argo CD runs it.
local hs = {}
local status = obj.status
if status == nil or status.observedGeneration == nil
    or (obj.metadata.generation ~= nil and status.observedGeneration < obj.metadata.generation) then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe the latest spec"
  return hs
end
local function condition(kind)
  if status.conditions ~= nil then
    for _, c in ipairs(status.conditions) do
      if c.type == kind then
        return c
      end
    end
  end
  return nil
end
local phase = status.phase or "Pending"
local stalled = condition("Stalled")
if stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  if stalled.reason == "EditNotRun" or stalled.reason == "InvalidEdit" then
    -- The spec shown was edited after the cycle started and never ran.
    hs.message = phase .. ": " .. (stalled.message or stalled.reason)
  else
    hs.message = phase .. ": " .. (status.message or stalled.message or stalled.reason or "failed")
  end
  return hs
end
local ready = condition("Ready")
if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  local verdict = ""
  if status.validation ~= nil and status.validation.verdict ~= nil then
    verdict = " (" .. status.validation.verdict .. ")"
  end
  hs.message = phase .. verdict
  return hs
end
local reconciling = condition("Reconciling")
if reconciling ~= nil and reconciling.reason == "Queued" then
  -- Kueue holds the step's Job until quota frees up: a wait, not a failure.
  hs.status = "Suspended"
  hs.message = phase .. ": queued (waiting for quota)"
  return hs
end
hs.status = "Progressing"
hs.message = phase
return hs
