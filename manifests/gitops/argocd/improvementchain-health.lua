-- Argo CD health check for kaizen.dev/ImprovementChain. Install it as
-- `resource.customizations.health.kaizen.dev_ImprovementChain` in argocd-cm (see
-- argocd-cm-health.yaml). Lua 5.1, as Argo CD runs it. A chain is long-lived: it is Healthy
-- while it waits for its schedule, runs a cycle or has completed; Degraded when it stalled (an
-- invalid spec, or a cycle failure the same spec would repeat); Suspended when spec.suspend.
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
local phase = status.phase or "Waiting"
local version = " (version " .. tostring(status.version or 0) .. ")"
local stalled = condition("Stalled")
if stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = phase .. ": " .. (status.message or stalled.message or stalled.reason or "stalled")
  return hs
end
if obj.spec ~= nil and obj.spec.suspend == true and status.currentCycle == nil then
  hs.status = "Suspended"
  hs.message = "Suspended" .. version
  return hs
end
local ready = condition("Ready")
if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = (status.message or phase) .. version
  return hs
end
hs.status = "Progressing"
hs.message = phase .. version
return hs
