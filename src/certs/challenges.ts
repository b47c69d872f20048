// HTTP-01 (RFC 8555 §8.3) from the daemon's side: each challenge of an order is pushed to the
// router, which answers it on its HTTP port in every worker (src/router/challenge.ts), and is
// taken back once the CA has looked, whether the order succeeded or not.
import type { Authorization } from 'acme-client';
import { CertificateOrderFailed } from '../errors/index.ts';
import { isChallengeToken } from '../router/index.ts';

/** What answers challenges: the daemon's router link (or a test's router client). */
export interface ChallengePort {
  addChallenge(token: string, keyAuthorization: string): Promise<void>;
  removeChallenge(token: string): Promise<void>;
}

interface Challenge {
  type: string;
  token: string;
}

/** acme-client's challengeCreateFn / challengeRemoveFn, for HTTP-01 only. */
export function http01(port: ChallengePort): {
  create: (authz: Authorization, c: Challenge, keyAuthorization: string) => Promise<void>;
  remove: (authz: Authorization, c: Challenge, keyAuthorization: string) => Promise<void>;
} {
  return {
    async create(authz, c, keyAuthorization) {
      if (c.type !== 'http-01')
        throw new CertificateOrderFailed(
          `${authz.identifier.value}: the CA offered no http-01 challenge (got ${c.type})`,
        );
      // The token comes from the CA and becomes a URL path the router answers: the router
      // refuses anything but an ACME token, and so does this side, with the CA named.
      if (!isChallengeToken(c.token))
        throw new CertificateOrderFailed(
          `${authz.identifier.value}: the CA sent a challenge token that is not base64url`,
        );
      await port.addChallenge(c.token, keyAuthorization);
    },
    async remove(_authz, c) {
      if (isChallengeToken(c.token)) await port.removeChallenge(c.token);
    },
  };
}
