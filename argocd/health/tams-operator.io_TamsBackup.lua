-- Argo CD health of a TamsBackup (resource.customizations.health.tams-operator.io_TamsBackup).
-- Healthy once completed, Degraded when it failed, Progressing while its Job runs.
local hs = {status = "Progressing", message = "Waiting for the operator"}
if obj.metadata.deletionTimestamp ~= nil then
  hs.message = "Deleting"
  return hs
end
if obj.status == nil or obj.status.phase == nil then
  return hs
end
if obj.status.phase == "Completed" then
  hs.status = "Healthy"
  hs.message = "Backup written to " .. (obj.status.url or "its bucket")
elseif obj.status.phase == "Failed" then
  hs.status = "Degraded"
  hs.message = obj.status.error or "Failed"
else
  hs.message = "Backing up to " .. (obj.status.url or "its bucket")
end
return hs
