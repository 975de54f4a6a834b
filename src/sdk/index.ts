/**
 * `herald/sdk`: what an app that receives Herald's deliveries imports.
 * Depends on node:crypto only at runtime: the Fastify plugin imports only
 * Fastify's types, and the Express middleware is typed structurally.
 */
export {
  signRequest,
  verifySignedRequest,
  verifySignedJson,
  SignatureError,
  SIGNED_REQUEST_ALGORITHM,
  type VerifyOptions,
} from '../domain/signature.js';
export { signStandardWebhook } from '../domain/standard-webhooks.js';
export {
  verifyStandardWebhook,
  DEFAULT_TOLERANCE_SECONDS,
  type HeaderSource,
  type StandardWebhookOptions,
} from './standard-webhooks.js';
export {
  heraldExpress,
  heraldFastify,
  verifyHeraldDelivery,
  signatureProblem,
  type DeliveryFormat,
  type ExpressLikeRequest,
  type HeraldDelivery,
  type HeraldExpressOptions,
  type HeraldFastifyOptions,
  type HeraldFastifyRequest,
  type HeraldVerifyOptions,
  type Problem,
} from './middleware.js';
