// A node-soap client polling the gateway's pull service (schemas/wsdl/pull-v1.wsdl,
// served at /api/v1/agency/soap?wsdl), as a bank of another stack would: it reads
// the WSDL the gateway serves, logs in with a WS-Security UsernameToken, lists its
// requests, fetches their documents and checks each one's MD5 itself, feeds
// answers back and sends requests back.
//
//   node poll_client.js <wsdl url> <user>:<password> list <cx|kz>
//   node poll_client.js <wsdl url> <user>:<password> feed <cx|kz> <[{"BDHM", "FKNR" (base64)}] as JSON>
//   node poll_client.js <wsdl url> <user>:<password> sendback <BDHM> <reason>
//
// TLS: the gateway's certificate is verified against NODE_EXTRA_CA_CERTS.
// Prints one JSON line (the answer as node-soap read it, plus what it computed),
// or {"fault": ...} for a SOAP fault.
'use strict';

const crypto = require('crypto');
const soap = require('soap');

const asList = (value) => (value === undefined || value === null ? [] : Array.isArray(value) ? value : [value]);
const md5 = (base64) => crypto.createHash('md5').update(Buffer.from(base64, 'base64')).digest('hex');
const sha256 = (base64) => crypto.createHash('sha256').update(Buffer.from(base64, 'base64')).digest('hex');

async function list(client, kind) {
  const [listing] = await client[kind === 'cx' ? 'getXzcxListAsync' : 'getXzkzListAsync']({ MAX: 100 });
  const rows = asList(listing.Data && listing.Data.QQ);
  const documents = {};
  const credentials = {};
  for (const row of rows) {
    if (Number(row.WSSL) > 0) {
      const [docs] = await client[kind === 'cx' ? 'cxwsInfoAsync' : 'kzwsInfoAsync']({ BDHM: row.BDHM });
      documents[row.BDHM] = asList(docs.Data && docs.Data.WSINFO).map((d) => ({
        XH: Number(d.XH), WJMC: d.WJMC, WJLX: d.WJLX, MD5: d.MD5, computed_md5: md5(d.WSNR),
        SHA256: d.SHA256, computed_sha256: sha256(d.WSNR),
      }));
    }
    if (kind === 'kz') {
      const [cards] = await client.zjInfoAsync({ BDHM: row.BDHM });
      credentials[row.BDHM] = asList(cards.Data && cards.Data.ZJINFO).map((c) => ({
        XM: c.XM, GZZBH: c.GZZBH, GWZBH: c.GWZBH,
        images_ok: md5(c.GZZ.TPNR) === c.GZZ.MD5 && md5(c.GWZ.TPNR) === c.GWZ.MD5,
      }));
    }
  }
  return {
    head: listing.Head,
    rows: rows.map((r) => ({ BDHM: r.BDHM, XZ: r.XZ, CZLX: r.CZLX, WSSL: Number(r.WSSL), SHA256: r.SHA256, QQNR: r.QQNR })),
    documents,
    credentials,
  };
}

async function main() {
  const [wsdlUrl, login, command, ...rest] = process.argv.slice(2);
  const client = await soap.createClientAsync(wsdlUrl, { disableCache: true });
  const [user, password] = login.split(':');
  client.setSecurity(new soap.WSSecurity(user, password, { passwordType: 'PasswordText', hasTimeStamp: false }));
  let out;
  try {
    if (command === 'list') {
      out = await list(client, rest[0]);
    } else if (command === 'feed') {
      const [acks] = await client[rest[0] === 'cx' ? 'shfeedXzcxInfoAsync' : 'shfeedXzkzInfoAsync']({ Data: { FK: JSON.parse(rest[1]) } });
      out = { head: acks.Head, acks: asList(acks.Data && acks.Data.HZ) };
    } else if (command === 'sendback') {
      const [acks] = await client.htInfoAsync({ BDHM: rest[0], HTYY: rest[1] });
      out = { head: acks.Head, acks: asList(acks.Data && acks.Data.HZ) };
    } else {
      throw new Error(`unknown command ${command}`);
    }
  } catch (error) {
    if (error.root && error.root.Envelope) {
      out = { fault: error.root.Envelope.Body.Fault, status: error.response && error.response.status };
    } else {
      throw error;
    }
  }
  process.stdout.write(JSON.stringify(out) + '\n');
}

main().catch((error) => {
  process.stderr.write(`${error.stack || error}\n`);
  process.exit(1);
});
