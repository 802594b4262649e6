// A bank served by node-soap from our bank WSDL (schemas/wsdl/bank-v1.wsdl):
// a SOAP stack of another ecosystem, so that our WSDL, envelopes and faults are
// proved interoperable and not just self-consistent.
//
//   node bank_server.js <port>      (0: any free port; prints "listening <port>")
//
// Inquire and Control answer with valid answers echoing BDHM, and QQSHA256 =
// SHA-256 of the exclusive C14N of the request element as received (xml-crypto's
// ExclusiveCanonicalization, the same digest schemas.xml.digest computes).
// Chosen subjects get faults: FAULT_CLIENT_ID a soap:Client fault (refused),
// FAULT_SERVER_ID a soap:Server fault (try later).
'use strict';

const crypto = require('crypto');
const fs = require('fs');
const http = require('http');
const path = require('path');
const soap = require('soap');
const { DOMParser } = require('@xmldom/xmldom');
const { ExclusiveCanonicalization } = require('xml-crypto');

const FAULT_CLIENT_ID = '11010519491231002X';
const FAULT_SERVER_ID = '110105198001010019';
const SOAP_ENV = 'http://schemas.xmlsoap.org/soap/envelope/';
const WSDL_PATH = path.resolve(__dirname, '../../../schemas/wsdl/bank-v1.wsdl');

function utcNow() {
  return new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');
}

function requestDigest(rawXml) {
  const doc = new DOMParser().parseFromString(rawXml, 'text/xml');
  const body = doc.getElementsByTagNameNS(SOAP_ENV, 'Body')[0];
  let element = body.firstChild;
  while (element && element.nodeType !== 1) element = element.nextSibling;
  const canonical = new ExclusiveCanonicalization().process(element, {});
  return crypto.createHash('sha256').update(canonical, 'utf8').digest('hex');
}

// node-soap reads xs:date into a Date and may read xs:decimal into a number: write them back as the XSD wants.
function dateText(value) {
  return value instanceof Date ? value.toISOString().slice(0, 10) : String(value);
}

function moneyText(value) {
  return Number(value).toFixed(2);
}

function faultFor(idNumber) {
  if (idNumber === FAULT_CLIENT_ID) {
    return { Fault: { faultcode: 'soap:Client', faultstring: '2000 bad credentials for this court', statusCode: 500 } };
  }
  if (idNumber === FAULT_SERVER_ID) {
    return { Fault: { faultcode: 'soap:Server', faultstring: '1000 core banking system busy, try later', statusCode: 500 } };
  }
  return null;
}

function head(args, req, kind) {
  return {
    BDHM: args.Head.BDHM,
    XZ: kind,
    QQSHA256: requestDigest(req.rawXml),
    RESPONSECODE: '0000',
    RESPONSEINFO: 'ok (node-soap)',
    FKSJ: utcNow(),
  };
}

const service = {
  BankService: {
    BankPort: {
      Inquire(args, callback, headers, req) {
        const fault = faultFor(args.Data.DSRZJHM);
        if (fault) throw fault;
        const accounts = [{
          ZH: '6222000012345678901', ZHZT: '1', ZHLX: '01', KHWD: 'node branch', KHRQ: '2015-03-02',
          BZ: 'CNY', YE: '1500.00', KYYE: '1500.00',
        }];
        return { Head: head(args, req, '1'), Data: { CKZH: accounts } };
      },
      Control(args, callback, headers, req) {
        const fault = faultFor(args.Data.DSRZJHM);
        if (fault) throw fault;
        const lines = [].concat(args.Data.KZ);
        const results = lines.map((line, index) => {
          const asked = line.JE === undefined ? undefined : moneyText(line.JE);
          const result = { KZCS: line.KZCS, ZH: line.ZH, KZZT: '1' };
          if (line.KSRQ !== undefined) result.KSRQ = dateText(line.KSRQ);
          if (line.JSRQ !== undefined) result.JSRQ = dateText(line.JSRQ);
          if (asked !== undefined) { result.DJXE = asked; result.SKJE = asked; }
          result.DJBH = 'NODE' + String(index + 1).padStart(6, '0');
          return result;
        });
        return { Head: head(args, req, '2'), Data: { KZJG: results } };
      },
    },
  },
};

const port = Number(process.argv[2] || 0);
const wsdlXml = fs.readFileSync(WSDL_PATH, 'utf8');
const server = http.createServer((req, res) => { res.statusCode = 404; res.end(); });
server.listen(port, '127.0.0.1', () => {
  const soapServer = soap.listen(server, { path: '/soap/bank/v1', services: service, xml: wsdlXml, uri: WSDL_PATH });
  soapServer.log = (type, data, req) => {
    if (type === 'received' && req) req.rawXml = data; // the envelope as it arrived, for the digest
  };
  // node-soap attaches its request handler once the WSDL and its XSD are loaded:
  // say "listening" only when the service answers ?wsdl.
  const announceWhenReady = () => {
    const port = server.address().port;
    http.get({ host: '127.0.0.1', port, path: '/soap/bank/v1?wsdl' }, (res) => {
      res.resume();
      if (res.statusCode === 200) process.stdout.write(`listening ${port}\n`);
      else setTimeout(announceWhenReady, 20);
    }).on('error', () => setTimeout(announceWhenReady, 20));
  };
  announceWhenReady();
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
