-- Argo CD health of a TamsStore (resource.customizations.health.tams-operator.io_TamsStore).
-- Healthy when Ready; Degraded when Ready is False for a reason that needs a person; else Progressing.
local hs = {status = "Progressing", message = "Waiting for the operator"}
local needs_a_person = {
  InvalidSpec = true, SecretNotFound = true, SecretKeyNotFound = true, S3Failed = true, VastFailed = true,
  PostgresFailed = true, BackupFailed = true,
  ErrImagePull = true, ImagePullBackOff = true, InvalidImageName = true, CrashLoopBackOff = true,
  CreateContainerConfigError = true, CreateContainerError = true,
}
if obj.metadata.deletionTimestamp ~= nil then
  hs.message = "Deleting"
  return hs
end
if obj.status == nil or obj.status.conditions == nil then
  return hs
end
if obj.status.observedGeneration == nil or obj.status.observedGeneration < obj.metadata.generation then
  hs.message = "The operator has not yet seen the latest spec"
  return hs
end
for _, condition in ipairs(obj.status.conditions) do
  if condition.type == "Ready" then
    hs.message = condition.message or ""
    if condition.status == "True" then
      hs.status = "Healthy"
    elseif needs_a_person[condition.reason] then
      hs.status = "Degraded"
    end
  end
end
return hs
