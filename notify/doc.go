// Package notify sends the accounting notifications (invoice sent, payment
// received, overdue and reminders) as e-mail, each at most once in effect.
//
// A Message carries a Message-ID derived from the job that sends it
// (MessageID), so every attempt of one job sends the same message, byte for
// byte: the Date is the job's creation time, not the attempt's. A Mailer
// sends through a Sender (SMTP, or Memory for the demo and tests) and keeps
// an Outbox of what it sent in the broker's document store, which every
// worker process shares:
//
//  1. if the outbox holds the Message-ID as sent, nothing is sent again;
//  2. otherwise the outbox records "sending" with a hash of the content
//     and counts the attempt, the message is sent, and the outbox records
//     it as sent.
//
// A worker killed between 2's send and its record leaves "sending": the
// retry sends the same message again (same Message-ID, same content;
// Result.Resent says so, and receiving MTAs and mail clients treat a
// repeated Message-ID as the same message). A message whose content
// differs from what the outbox recorded under its Message-ID is refused
// (ErrContentChanged), so one Message-ID never carries two contents.
package notify
