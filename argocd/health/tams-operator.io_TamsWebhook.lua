-- Argo CD health of a TamsWebhook (resource.customizations.health.tams-operator.io_TamsWebhook).
-- Healthy when registered and delivering, Suspended when disabled, Degraded when TAMS gave up or refused it.
local hs = {status = "Progressing", message = "Waiting for the operator"}
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
      hs.status = obj.status.tamsStatus == "disabled" and "Suspended" or "Healthy"
    elseif condition.reason == "WebhookError" or condition.reason == "Refused" or condition.reason == "SecretNotFound" then
      hs.status = "Degraded"
    end
  end
end
return hs
