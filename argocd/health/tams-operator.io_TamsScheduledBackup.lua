-- Argo CD health of a TamsScheduledBackup (resource.customizations.health.tams-operator.io_TamsScheduledBackup).
-- Degraded when its spec cannot work (the schedule), Suspended while suspended, else Healthy (each backup it makes
-- has a health of its own).
local hs = {status = "Healthy", message = "Scheduled"}
if obj.status ~= nil and obj.status.error ~= nil and obj.status.error ~= "" then
  hs.status = "Degraded"
  hs.message = obj.status.error
  return hs
end
if obj.spec.suspend then
  hs.status = "Suspended"
  hs.message = "Suspended"
  return hs
end
if obj.status ~= nil and obj.status.nextScheduleTime ~= nil then
  hs.message = "Next backup at " .. obj.status.nextScheduleTime
end
return hs
