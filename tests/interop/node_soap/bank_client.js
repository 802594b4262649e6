// A node-soap client calling a bank through the WSDL it serves: proves that our
// served WSDL (and the XSD it points at) and our envelopes are consumable by
// another SOAP stack.
//
//   node bank_client.js <wsdl url> <Inquire|Control> <request as JSON> [<user>:<password>]
//
// With credentials the call carries a WS-Security UsernameToken (node-soap's WSSecurity).
//
// Prints one JSON line: {"answer": <the answer as node-soap read it>,
// "request_digest": <SHA-256 of the exclusive C14N of the request element sent>}
// or {"fault": {...}} for a SOAP fault.
'use strict';

const crypto = require('crypto');
const soap = require('soap');
const { DOMParser } = require('@xmldom/xmldom');
const { ExclusiveCanonicalization } = require('xml-crypto');

const SOAP_ENV = 'http://schemas.xmlsoap.org/soap/envelope/';

function bodyDigest(envelopeXml) {
  const doc = new DOMParser().parseFromString(envelopeXml, 'text/xml');
  const body = doc.getElementsByTagNameNS(SOAP_ENV, 'Body')[0];
  let element = body.firstChild;
  while (element && element.nodeType !== 1) element = element.nextSibling;
  const canonical = new ExclusiveCanonicalization().process(element, {});
  return crypto.createHash('sha256').update(canonical, 'utf8').digest('hex');
}

async function main() {
  const [wsdlUrl, operation, requestJson, credentials] = process.argv.slice(2);
  const client = await soap.createClientAsync(wsdlUrl, { disableCache: true });
  if (credentials) {
    const [user, password] = credentials.split(':');
    client.setSecurity(new soap.WSSecurity(user, password, { passwordType: 'PasswordText', hasTimeStamp: false }));
  }
  try {
    const [answer] = await client[`${operation}Async`](JSON.parse(requestJson));
    process.stdout.write(JSON.stringify({ answer, request_digest: bodyDigest(client.lastRequest) }) + '\n');
  } catch (error) {
    if (error.root && error.root.Envelope) {
      process.stdout.write(JSON.stringify({ fault: error.root.Envelope.Body.Fault, status: error.response && error.response.status }) + '\n');
      return;
    }
    throw error;
  }
}

main().catch((error) => {
  process.stderr.write(`${error.stack || error}\n`);
  process.exit(1);
});
