-- Argo CD health of a TamsDeletionRequest (resource.customizations.health.tams-operator.io_TamsDeletionRequest).
-- Healthy once done, Degraded when it failed, Progressing while it runs.
local hs = {status = "Progressing", message = "Waiting for the operator"}
if obj.metadata.deletionTimestamp ~= nil then
  hs.message = "Deleting"
  return hs
end
if obj.status == nil or obj.status.conditions == nil then
  return hs
end
for _, condition in ipairs(obj.status.conditions) do
  if condition.type == "Complete" and condition.status == "True" then
    hs.status = "Healthy"
    hs.message = "Deleted"
  elseif condition.type == "Failed" and condition.status == "True" then
    hs.status = "Degraded"
    hs.message = condition.message or "Failed"
  elseif condition.type == "Complete" and hs.status == "Progressing" then
    hs.message = condition.message or hs.message
  end
end
return hs
