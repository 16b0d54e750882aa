package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strconv"
	"time"

	"github.com/peterbourgon/ff/v3/ffcli"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	pvkv1 "github.com/hnsec/hnsec/gen/hnsec/pvk/v1"
	"github.com/hnsec/hnsec/pkg/flagx"
)

// callBuilder, withIDBuilder and byIDBuilder build admin subcommands (see adminCommand).
type (
	callBuilder   = func(name, usage, help string, flags func(*flag.FlagSet), rpc func(*adminSession, []string) (proto.Message, error)) *ffcli.Command
	withIDBuilder = func(name, usage, help string, flags func(*flag.FlagSet), rpc func(*adminSession, string) (proto.Message, error)) *ffcli.Command
	byIDBuilder   = func(group, name, help string, rpc func(*adminSession, string) (proto.Message, error)) *ffcli.Command
)

// subscriptionFlags are the flags that describe a subscription's delivery and filters.
type subscriptionFlags struct {
	webhookURL, xAuth   string
	pull, clearFilters  bool
	guids, types, parts flagx.StringList
	fromSeq             int64
	fromTime            string
	max, waitMs         int
}

func (f *subscriptionFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.webhookURL, "webhook-url", "", "deliver by POST to this URL (default: pull delivery)")
	fs.StringVar(&f.xAuth, "x-authorization", "", "true: send the SystemToken in X-Authorization instead of Authorization")
	fs.Var(&f.guids, "definisjon-guid", "only changes of this definition (repeatable)")
	fs.Var(&f.types, "type-pi", "only changes of this typePi (repeatable)")
	fs.Var(&f.parts, "part-kode", "only changes of this party's definitions (repeatable)")
}

// proto returns the subscription the flags describe.
func (f *subscriptionFlags) proto(id string) (*pvkv1.Subscription, error) {
	sub := &pvkv1.Subscription{SubscriptionId: id, Filters: &pvkv1.Filters{DefinisjonGuids: f.guids, TypePis: f.types, PartKoder: f.parts}}
	xAuth := false
	if f.xAuth != "" {
		var err error
		if xAuth, err = strconv.ParseBool(f.xAuth); err != nil {
			return nil, fmt.Errorf("--x-authorization: want true or false, got %q", f.xAuth)
		}
	}
	if f.webhookURL != "" || xAuth {
		sub.Webhook = &pvkv1.Webhook{Url: f.webhookURL, UseXAuthorization: xAuth}
	}
	return sub, nil
}

// mask names the fields the update flags set.
func (f *subscriptionFlags) mask() *fieldmaskpb.FieldMask {
	m := &fieldmaskpb.FieldMask{}
	switch {
	case f.pull:
		m.Paths = append(m.Paths, "webhook")
	case f.webhookURL != "":
		m.Paths = append(m.Paths, "webhook.url")
	}
	if f.xAuth != "" && !f.pull {
		m.Paths = append(m.Paths, "webhook.use_x_authorization")
	}
	if f.clearFilters {
		m.Paths = append(m.Paths, "filters")
	}
	for path, list := range map[string]flagx.StringList{"filters.definisjon_guids": f.guids, "filters.type_pis": f.types, "filters.part_koder": f.parts} {
		if len(list) > 0 && !f.clearFilters {
			m.Paths = append(m.Paths, path)
		}
	}
	return m
}

// subscriptionCommands are `hnsec admin pvk subscription ...`: they act as the subscriber whose client
// credential --credentials-file holds (the dev client's by default), with the replication scope.
func subscriptionCommands(cfg *adminConfig, call callBuilder, withID withIDBuilder, byIDIn byIDBuilder) []*ffcli.Command {
	var f subscriptionFlags
	client := func(s *adminSession) pvkv1.SubscriptionsServiceClient {
		return pvkv1.NewSubscriptionsServiceClient(s.conn)
	}
	const usage = "hnsec admin pvk subscription "
	byID := func(name, help string, rpc func(*adminSession, string) (proto.Message, error)) *ffcli.Command {
		return byIDIn("pvk subscription", name, help, rpc)
	}
	cmds := []*ffcli.Command{
		call("create", "hnsec admin pvk subscription create [--webhook-url URL [--x-authorization true]] [--definisjon-guid G ...] [--type-pi T ...] [--part-kode P ...]",
			"subscribe to changes, by webhook or pull", f.register,
			func(s *adminSession, _ []string) (proto.Message, error) {
				sub, err := f.proto("")
				if err != nil {
					return nil, err
				}
				resp, err := client(s).CreateSubscription(s.ctx, &pvkv1.CreateSubscriptionRequest{Filters: sub.Filters, Webhook: sub.Webhook})
				return resp.GetSubscription(), err
			}),
		call("list", "hnsec admin pvk subscription list", "list the subscriber's subscriptions", nil,
			func(s *adminSession, _ []string) (proto.Message, error) {
				return client(s).ListSubscriptions(s.ctx, &pvkv1.ListSubscriptionsRequest{})
			}),
		byID("get", "show a subscription", func(s *adminSession, id string) (proto.Message, error) {
			resp, err := client(s).GetSubscription(s.ctx, &pvkv1.GetSubscriptionRequest{SubscriptionId: id})
			return resp.GetSubscription(), err
		}),
		withID("update", usage+"update [--webhook-url URL | --pull] [--x-authorization true|false] [--definisjon-guid G ...] [--type-pi T ...] [--part-kode P ...] [--clear-filters] ID",
			"change the delivery or the filters named by the flags",
			func(fs *flag.FlagSet) {
				f.register(fs)
				fs.BoolVar(&f.pull, "pull", false, "switch to pull delivery")
				fs.BoolVar(&f.clearFilters, "clear-filters", false, "replace every filter with the ones given (none: receive everything)")
			},
			func(s *adminSession, id string) (proto.Message, error) {
				sub, err := f.proto(id)
				if err != nil {
					return nil, err
				}
				if f.pull && f.webhookURL != "" {
					return nil, errors.New("--pull and --webhook-url exclude each other")
				}
				if f.pull {
					sub.Webhook = nil
				}
				resp, err := client(s).UpdateSubscription(s.ctx, &pvkv1.UpdateSubscriptionRequest{Subscription: sub, UpdateMask: f.mask()})
				return resp.GetSubscription(), err
			}),
		byID("pause", "stop delivery until resumed", func(s *adminSession, id string) (proto.Message, error) {
			resp, err := client(s).PauseSubscription(s.ctx, &pvkv1.PauseSubscriptionRequest{SubscriptionId: id})
			return resp.GetSubscription(), err
		}),
		byID("resume", "restart delivery where it stopped", func(s *adminSession, id string) (proto.Message, error) {
			resp, err := client(s).ResumeSubscription(s.ctx, &pvkv1.ResumeSubscriptionRequest{SubscriptionId: id})
			return resp.GetSubscription(), err
		}),
		byID("delete", "end a subscription", func(s *adminSession, id string) (proto.Message, error) {
			return client(s).DeleteSubscription(s.ctx, &pvkv1.DeleteSubscriptionRequest{SubscriptionId: id})
		}),
		withID("replay", usage+"replay (--from-endringsnummer N | --from-time RFC3339) ID", "deliver every change again from an endringsnummer (change stream position) or a time on",
			func(fs *flag.FlagSet) {
				fs.Int64Var(&f.fromSeq, "from-endringsnummer", 0, "first endringsnummer (the change stream position, the change event's endringsnummer attribute) to deliver again")
				fs.Int64Var(&f.fromSeq, "from-sekvensnummer", 0, "old name of --from-endringsnummer")
				fs.StringVar(&f.fromTime, "from-time", "", "deliver again what changed at or after this time (RFC 3339)")
			},
			func(s *adminSession, id string) (proto.Message, error) {
				req := &pvkv1.ReplaySubscriptionRequest{SubscriptionId: id, FromEndringsnummer: f.fromSeq}
				if f.fromTime != "" {
					t, err := time.Parse(time.RFC3339, f.fromTime)
					if err != nil {
						return nil, fmt.Errorf("--from-time: want RFC 3339, got %q", f.fromTime)
					}
					req.FromTime = timestamppb.New(t)
				}
				return client(s).ReplaySubscription(s.ctx, req)
			}),
		withID("pull", usage+"pull [--max N] [--wait-ms MS] ID", "pull changes of a pull subscription (acknowledge them with ack)",
			func(fs *flag.FlagSet) {
				fs.IntVar(&f.max, "max", 0, "changes at most (default 100)")
				fs.IntVar(&f.waitMs, "wait-ms", 0, "how long to wait for the first change")
			},
			func(s *adminSession, id string) (proto.Message, error) {
				return client(s).PullSubscription(s.ctx, &pvkv1.PullSubscriptionRequest{SubscriptionId: id, Max: int32(f.max), WaitMs: int32(f.waitMs)})
			}),
		call("ack", "hnsec admin pvk subscription ack ID ACK_ID [ACK_ID ...]", "acknowledge pulled changes", nil,
			func(s *adminSession, args []string) (proto.Message, error) {
				if len(args) < 2 {
					return nil, errors.New("expected a subscription id and at least one ack id")
				}
				return client(s).AckSubscription(s.ctx, &pvkv1.AckSubscriptionRequest{SubscriptionId: args[0], AckIds: args[1:]})
			}),
	}
	for _, c := range cmds {
		exec := c.Exec
		c.Exec = func(ctx context.Context, args []string) error {
			cfg.as = asSubscriber
			return exec(ctx, args)
		}
	}
	return cmds
}
